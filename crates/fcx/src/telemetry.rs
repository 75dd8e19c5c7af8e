//! The server's own logs and traces: `tracing` events to stderr as text or JSON
//! (`--log-format`, filtered by `FCX_LOG`), and with `--otlp-endpoint` the invoke spans
//! exported over OTLP/HTTP (protobuf) by OpenTelemetry's batch exporter. The exporter runs on
//! its own thread; its HTTP requests are made by hyper on the server's runtime.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per event (timestamp, level, target, fields, span), for log shippers.
    Json,
}

/// How long one export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_env("FCX_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Sets up logging only (every command but `fcx server` with `--otlp-endpoint`).
pub fn init_logs(format: LogFormat) {
    let stderr_is_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_tty);
    let fmt = match format {
        LogFormat::Text => fmt.with_filter(env_filter()).boxed(),
        LogFormat::Json => fmt.json().with_filter(env_filter()).boxed(),
    };
    let _ = tracing_subscriber::registry().with(fmt).try_init();
}

/// The exporter, flushed and stopped on drop.
pub struct Otlp(SdkTracerProvider);

impl Drop for Otlp {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// Logging plus OTLP export of the invoke spans to `endpoint` (e.g.
/// `http://collector:4318/v1/traces`).
pub fn init_with_otlp(
    format: LogFormat,
    endpoint: &str,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<Otlp> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(RuntimeClient::new(runtime))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("fcx")
                .build(),
        )
        .build();
    let tracer = provider.tracer("fcx");
    // Only fcx's invoke spans (and what runs inside them) are exported.
    let spans = Targets::new()
        .with_target(fcx_gateway::trace::TARGET, tracing::Level::DEBUG)
        .with_target("fcx_scheduler", tracing::Level::DEBUG);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(spans);
    let stderr_is_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_tty);
    let fmt = match format {
        LogFormat::Text => fmt.with_filter(env_filter()).boxed(),
        LogFormat::Json => fmt.json().with_filter(env_filter()).boxed(),
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(Otlp(provider))
}

/// OpenTelemetry's HTTP client trait over hyper, running each request on the server's
/// runtime (the batch exporter's own thread has none).
#[derive(Debug)]
struct RuntimeClient {
    runtime: tokio::runtime::Handle,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
}

impl RuntimeClient {
    fn new(runtime: tokio::runtime::Handle) -> RuntimeClient {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        RuntimeClient { runtime, client }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, Full::new(body));
        let task = self.runtime.spawn(async move {
            let call = async {
                let resp = client.request(request).await?;
                let (parts, body) = resp.into_parts();
                let bytes = body.collect().await?.to_bytes();
                Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, bytes))
            };
            tokio::time::timeout(EXPORT_TIMEOUT, call)
                .await
                .map_err(|_| -> opentelemetry_http::HttpError { "OTLP export timed out".into() })?
        });
        task.await?
    }
}
