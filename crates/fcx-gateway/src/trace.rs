//! Trace context and the invoke span: the client's `traceparent` (or a new trace when it
//! sent none or an invalid one), the `tracing` span each invocation runs in (target
//! `fcx::invoke`, level DEBUG, so with the default filters and no OTLP export it is disabled
//! at its call site and costs nothing), and the child `traceparent` the instance receives
//! and the client gets back. With OTLP export on (`fcx server --otlp-endpoint`), the span is
//! exported as a child of the client's span, and the forwarded header names it.

use fcx_control::invoke::TraceHeaders;
use fcx_protocol::trace::{TraceParent, TRACEPARENT, TRACESTATE};
use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of the invoke spans (what `--otlp-endpoint` exports).
pub const TARGET: &str = "fcx::invoke";

fn random<const N: usize>() -> [u8; N] {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// The trace this invocation belongs to: the client's, or a new one.
pub struct Trace {
    /// What the client sent (`None`: fcx started the trace).
    pub incoming: Option<TraceParent>,
    /// The trace id the invocation's spans and the forwarded header carry.
    pub trace_id: [u8; 16],
    flags: u8,
    tracestate: Option<HeaderValue>,
}

impl Trace {
    /// The client's `traceparent`/`tracestate` when valid, else a new sampled trace.
    pub fn from_headers(headers: &HeaderMap) -> Trace {
        let incoming = headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        match incoming {
            Some(t) => Trace {
                incoming,
                trace_id: t.trace_id,
                flags: t.flags,
                tracestate: headers.get(TRACESTATE).cloned(),
            },
            None => Trace {
                incoming: None,
                trace_id: random(),
                flags: 1,
                tracestate: None,
            },
        }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        TraceParent::new_root(self.trace_id, [1; 8]).trace_id_hex()
    }

    /// Makes `span` (the invoke span) a child of the client's span for the exporter.
    pub fn adopt(&self, span: &tracing::Span) {
        let Some(parent) = self.incoming else {
            return;
        };
        let state = self
            .tracestate
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.parent_id),
            TraceFlags::new(parent.flags),
            true,
            state,
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }

    /// The headers for the instance: this trace, with fcx's span as the parent (the
    /// exported span's id when there is one, a fresh id otherwise).
    pub fn forward(&self, span: &tracing::Span) -> TraceHeaders {
        let exported = span.context().span().span_context().clone();
        let span_id = if exported.is_valid() && exported.trace_id().to_bytes() == self.trace_id {
            exported.span_id().to_bytes()
        } else {
            random()
        };
        let child = TraceParent {
            trace_id: self.trace_id,
            parent_id: span_id,
            flags: self.flags,
        };
        // One allocation holding the text and its reference count: the copy sent to the
        // instance and the one answered to the client share it.
        let traceparent = bytes::Bytes::from_owner(child.header_bytes());
        TraceHeaders {
            traceparent: HeaderValue::from_maybe_shared(traceparent)
                .unwrap_or(HeaderValue::from_static("")),
            tracestate: self.tracestate.clone(),
        }
    }
}
