//! The `fcx` command: flags and wiring only; the work lives in the library crates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod cli;
mod doctor;
mod image;
mod store;
mod telemetry;

/// fcx runs Function Compute custom-runtime and custom-container functions on your own
/// machine, with FC's exact contract: its API, headers, errors and limits.
#[derive(Parser)]
#[command(name = "fcx", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: cli::GlobalArgs,
}

// Parsed once at start and matched once: the size of the server's variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the fcx server: FC 3.0 API (2023-03-30) and instances on this machine.
    #[command(after_help = "Examples:
  fcx server                                  # 127.0.0.1:9100, data in ./.fcx, signed requests
  fcx server --listen 0.0.0.0:9100 --data-dir /var/lib/fcx
  fcx server --auth none                      # development: no signatures, loopback only
  curl -XPOST http://127.0.0.1:9100/2023-03-30/functions/NAME/invocations -d '{\"key\":\"value\"}'   # --auth none
  curl http://NAME.localhost:9100/                 # a function's HTTP trigger (fcx triggers ls NAME)
  fcx server --https-listen 127.0.0.1:9443        # HTTPS for custom domains (certificate by SNI)

With --auth signature (the default) every request is signed as the FC SDKs sign
(ACS3-HMAC-SHA256). The first start writes an admin key to <data dir>/credentials;
more keys: fcx keys create.")]
    Server(Box<ServerArgs>),
    /// Manage the AccessKeys that sign API requests (ACS3-HMAC-SHA256, as the FC SDKs do).
    #[command(subcommand)]
    Keys(cli::KeysCommand),
    /// Check that this host can run OCI (custom-container) instances and outbound networking
    /// (which egress mode a server would use, and why), and how to fix it.
    #[command(after_help = "Examples:
  fcx doctor                                   # crun, data dir ./.fcx, egress auto
  fcx doctor --runtime runc --data-dir /var/lib/fcx
  fcx doctor --egress pasta                    # what a server with --egress pasta needs
  sudo fcx doctor --fix                        # apply the hybrid-cgroup mount, then check again

Each failed check prints the command that fixes it.
Exit codes: 0 every check passed (warnings allowed), 1 a check failed.")]
    Doctor(doctor::DoctorArgs),
    /// Pull, import, list and remove the images of custom-container functions (the cache
    /// in <data dir>/images, shared with a running server).
    #[command(
        subcommand,
        after_help = "Examples:
  fcx image pull 127.0.0.1:5000/app:v1 --data-dir /var/lib/fcx
  fcx image import app.tar                     # `docker save` output, or an OCI layout dir
  fcx image ls
  fcx image rm 127.0.0.1:5000/app:v1

These work on <data dir>/images directly: no server has to run."
    )]
    Image(image::ImageCommand),
    /// Move a single node's data into the PostgreSQL database several nodes share.
    #[command(subcommand)]
    Store(store::StoreCommand),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

/// `--auth`: how the server authenticates API requests.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Auth {
    /// Every request must be signed with an AccessKey (ACS3-HMAC-SHA256, as the FC SDKs sign).
    Signature,
    /// No authentication (development only; loopback listen addresses only).
    None,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Address to listen on (port 0 picks a free port; the startup line prints it).
    #[arg(long, env = "FCX_LISTEN", default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Where functions, code packages and logs are kept (made 0700: instances cannot read it;
    /// one server at a time: a second on the same data dir is refused).
    #[arg(long, env = "FCX_DATA_DIR", default_value = "./.fcx")]
    data_dir: PathBuf,
    /// Parent of the server's run directory (unpacked code, pid files of instances).
    #[arg(long, env = "FCX_RUN_DIR", default_value = "/run/fcx")]
    run_dir: PathBuf,
    /// Seconds a new instance has to listen on its port before FunctionNotStarted (FC: 120).
    #[arg(long, default_value_t = fcx_protocol::limits::DEFAULT_START_TIMEOUT_SECS)]
    start_timeout: u64,
    /// How API requests are authenticated. `signature`: signed with an AccessKey as the FC
    /// SDKs sign (the first start writes an admin key to <data dir>/credentials). `none`:
    /// no authentication, allowed on loopback addresses only.
    #[arg(long, env = "FCX_AUTH", value_enum, default_value = "signature")]
    auth: Auth,
    /// Unprivileged uids for code-package instances, FIRST-LAST: each function gets one of
    /// its own (also its gid), kept across restarts, so functions cannot read or signal each
    /// other's processes and files. No user of the host may have a uid in the range.
    #[arg(long, env = "FCX_INSTANCE_UIDS", default_value = "100000-165535")]
    instance_uids: fcx_control::UidRange,
    /// Region reported to functions (FC_REGION, x-fc-region).
    #[arg(long, env = "FCX_REGION", default_value = "local")]
    region: String,
    /// Seconds an instance may stay idle before it is stopped (a function's idleTimeout wins).
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Freeze instances idle this many seconds (cgroup freezer; off unless given).
    #[arg(long)]
    freeze_idle_after: Option<u64>,
    /// Most instances running at once; more cold starts get 429 ResourceExhausted.
    #[arg(long, default_value_t = 100)]
    max_instances: u32,
    /// Seconds shutdown waits for in-flight requests before stopping instances anyway.
    #[arg(long, default_value_t = 30)]
    shutdown_timeout: u64,
    /// Seconds a client has to send a whole request head, counted from its first byte (and,
    /// on a new connection, from the accept); slower connections are closed (nginx's
    /// client_header_timeout).
    #[arg(long, default_value_t = 60)]
    header_timeout: u64,
    /// Seconds a keep-alive connection may wait for its next request before it is closed
    /// (nginx's keepalive_timeout).
    #[arg(long, default_value_t = 75)]
    keepalive_timeout: u64,
    /// Seconds a request body may send nothing before the request fails with 400 as the
    /// client's error, freeing its instance (nginx's client_body_timeout).
    #[arg(long, default_value_t = 60)]
    body_timeout: u64,
    /// Most client connections open at once; more are answered 503 TooManyConnections and
    /// closed. Lowered at start to what the open-file limit leaves.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Threads serving the API listener (the FC API, HTTP triggers, custom domains over
    /// HTTP); default: one per CPU. Each runs an event loop of its own on its own listening
    /// socket (SO_REUSEPORT; the kernel spreads connections over them), and a connection
    /// with its requests stays on one thread, as with nginx's worker processes.
    /// --max-connections is their total.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=fcx_gateway::MAX_SERVE_THREADS as i64))]
    serve_threads: Option<u16>,
    /// Async invocations run at once by this server.
    #[arg(long, default_value_t = 32)]
    async_workers: usize,
    /// Milliseconds before the first retry of a failed async invocation (doubles per attempt).
    #[arg(long, default_value_t = 1000)]
    async_retry_base_ms: u64,
    /// OCI runtime that runs custom-container functions: crun, runc, youki, a path, or
    /// `none` (code packages only). The server checks the host at start and refuses to
    /// start when the runtime cannot work (see `fcx doctor`).
    #[arg(long, env = "FCX_OCI_RUNTIME", default_value = "crun")]
    oci_runtime: String,
    /// Most processes one instance (process or container) may run (a fork bomb stops here).
    #[arg(long, default_value_t = 512)]
    pids_limit: i64,
    /// Scheduling policy of instance processes and containers. `batch`: SCHED_BATCH, an
    /// instance woken by a request does not preempt the thread serving it (same CPU share;
    /// more throughput when the gateway and instances share the CPUs). `normal`:
    /// SCHED_OTHER, as any process: instances' wake-ups may preempt the gateway.
    #[arg(long, default_value = "batch")]
    instance_scheduling: fcx_runtime::Scheduling,
    /// Containers kept created ahead of demand per custom-container function (web-server
    /// mode), so a cold start only starts the function's process; 0 turns this off.
    #[arg(long, default_value_t = 1)]
    sandboxes_per_function: u32,
    /// Most pre-created containers on this server (each holds a few MB).
    #[arg(long, default_value_t = 16)]
    sandbox_limit: u32,
    /// CRIU binary for snapshot starts (functions with the fcx extension `fcxSnapshot`);
    /// default: `criu` on PATH, /usr/local/sbin, /usr/sbin. Without a usable CRIU 4.2+
    /// those functions start cold (`fcx doctor` says why).
    #[arg(long, env = "FCX_CRIU")]
    criu: Option<PathBuf>,
    /// Disk budget of the snapshots in <data dir>/snapshots, in MB; the least recently used
    /// snapshots are removed beyond it.
    #[arg(long, default_value_t = 2048)]
    snapshot_budget_mb: u64,
    /// Restores of snapshots holding more memory than this many MB load their pages lazily
    /// (userfaultfd), where the kernel allows it: the instance runs at once and pages arrive
    /// on first touch.
    #[arg(long, default_value_t = 64)]
    snapshot_lazy_pages_mb: u64,
    /// Also serve GET /metrics (Prometheus text format) on this address, without
    /// authentication. On --listen, /metrics needs the API's authentication (none with
    /// --auth none).
    #[arg(long, env = "FCX_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Most function versions with metric series of their own; later ones are counted
    /// together under function="_other", qualifier="_other".
    #[arg(long, default_value_t = fcx_metrics::DEFAULT_MAX_FUNCTIONS)]
    metrics_max_functions: usize,
    /// The server's own log lines on stderr: `text`, or `json` (one object per line, for log
    /// shippers). FCX_LOG filters them (e.g. FCX_LOG=debug).
    #[arg(long, env = "FCX_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: telemetry::LogFormat,
    /// Export the invoke spans over OTLP/HTTP (protobuf) to this URL, e.g.
    /// http://127.0.0.1:4318/v1/traces. Off unless given.
    #[arg(long, env = "FCX_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Most MB of instance logs kept per function (all its instances); the oldest segments
    /// are removed first.
    #[arg(long, default_value_t = 100)]
    log_retention_mb: u64,
    /// Hours instance log segments are kept (closed segments older than this are removed).
    #[arg(long, default_value_t = 168)]
    log_retention_hours: u64,
    /// MB after which an instance's log segment is closed and a new one started (at most a
    /// quarter of --log-retention-mb).
    #[arg(long, default_value_t = 8)]
    log_segment_mb: u64,
    /// Instance output chunks (up to 16 KB each) buffered for the log writer; when it is
    /// full, output is dropped and counted (fcx_log_dropped_total), never waited for.
    #[arg(long, default_value_t = 2048)]
    log_buffer: usize,
    /// Benchmark baseline only: record no invocation metrics and write no instance log files
    /// (scripts/bench.sh measures what they cost).
    #[arg(long, hide = true)]
    no_observability: bool,
    /// Domain of HTTP trigger URLs: a trigger of function F answers at
    /// http://F.<domain>:<port>/ (F--QUALIFIER for a version or alias). The default works
    /// from browsers and curl without DNS set-up (*.localhost is loopback); with a wildcard
    /// DNS record use your own, e.g. fc.example.com, or fc.example.com:80 when a proxy in
    /// front serves another port.
    #[arg(
        long,
        env = "FCX_TRIGGER_DOMAIN",
        default_value = "localhost",
        value_name = "DOMAIN[:PORT]"
    )]
    trigger_domain: String,
    /// Also serve HTTPS here, for custom domains with protocol HTTPS (the certificate is
    /// picked by SNI from their certConfig).
    #[arg(long, env = "FCX_HTTPS_LISTEN")]
    https_listen: Option<SocketAddr>,
    /// Outbound networking of instances with internetAccess. `veth`: a veth pair per
    /// instance, routed and masqueraded by the kernel through fcx's own nftables table (no
    /// process per instance). `pasta`: one pasta process per instance (~29 MB each). `auto`:
    /// veth where nftables and veth work, else pasta; `fcx doctor` says which and why.
    #[arg(long, env = "FCX_EGRESS", default_value = "auto")]
    egress: fcx_runtime::egress::Requested,
    /// Range veth egress leases each server's address block from (a /24; larger when
    /// --max-instances + --sandbox-limit exceed 126). Blocks overlapping the host's routes
    /// or leased by another server are skipped.
    #[arg(long, env = "FCX_EGRESS_RANGE", default_value = fcx_runtime::egress::DEFAULT_RANGE)]
    egress_range: fcx_runtime::egress::Ipv4Net,
    /// Namespaces with veth egress kept made ahead of demand, so a cold start with
    /// internetAccess sets up nothing on its path (refilled in the background; 0: none).
    #[arg(long, default_value_t = 4)]
    egress_pool: usize,
    /// Where functions, configs, keys and the async queue live. `sqlite`: the embedded
    /// database in the data dir (one node). `postgres://USER:PASSWORD@HOST:PORT/DB`: a
    /// PostgreSQL database that several identical nodes share (every node needs the same
    /// <data dir>/secret.key; see ARCHITECTURE.md, "Several nodes").
    #[arg(long, env = "FCX_STORE", default_value = "sqlite")]
    store: fcx_store::StoreUrl,
    /// With a shared store: this node's id in the nodes table (default: host name and the
    /// data dir's prefix; stable across restarts, so a restart takes its leases back at once).
    #[arg(long, env = "FCX_NODE_ID")]
    node_id: Option<String>,
    /// With a shared store: HOST:PORT where other nodes reach this node's API (default: the
    /// --listen address when it names one).
    #[arg(long, env = "FCX_ADVERTISE")]
    advertise: Option<String>,
    /// With a shared store: seconds between full re-reads of the store, the safety net
    /// behind change notifications. A node serves a changed or deleted function at most
    /// this long after the change; one that cannot re-read for 3 × this refuses
    /// invocations (503 NodeOutOfSync).
    #[arg(long, default_value_t = 2)]
    sync_interval: u64,
    /// With a shared store: most instances all nodes together run (the account's instance
    /// cap over the cluster; give every node the same value). Each node leases a share of it
    /// every second; more cold starts get 429 ResourceExhausted. A node also never runs more
    /// than its own --max-instances.
    #[arg(long, env = "FCX_CLUSTER_MAX_INSTANCES")]
    cluster_max_instances: Option<u32>,
    /// With a shared store: a synchronous invocation this node has no free instance and no
    /// room (--max-instances) for goes to a live node that had room at its last heartbeat,
    /// once (a forwarded request is never forwarded again), instead of a 429.
    #[arg(long, env = "FCX_FORWARD")]
    forward: bool,
}

fn main() -> ExitCode {
    // PID 1 of a snapshot-enabled instance's namespace: before anything else (one thread).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = fcx_runtime::snapshot::run_init(&args[1..]) {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    // The init of a process instance (pid 1 of its PID namespace): not a user command.
    if args
        .get(1)
        .is_some_and(|a| a == fcx_runtime::init::SUBCOMMAND)
    {
        let code = fcx_runtime::init::main(&args[2..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Server(_)) {
        telemetry::init_logs(telemetry::LogFormat::Text);
    }
    let result = match cli.command {
        Command::Server(args) => server(*args),
        Command::Keys(cmd) => cli::keys(cmd),
        Command::Doctor(args) => return doctor::run(args),
        Command::Image(cmd) => return image::run(cmd, cli.global.output),
        Command::Store(cmd) => store::run(cmd),
        Command::Client(cmd) => return cli::run(cmd, cli.global),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fcx: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn server(args: ServerArgs) -> anyhow::Result<()> {
    let http = fcx_gateway::HttpConfig {
        listen: args.listen,
        auth: match args.auth {
            Auth::Signature => fcx_gateway::AuthMode::Signature,
            Auth::None => fcx_gateway::AuthMode::None,
        },
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        metrics_listen: args.metrics_listen,
        connections: fcx_gateway::ConnLimits {
            header_timeout: Duration::from_secs(args.header_timeout.max(1)),
            idle_timeout: Duration::from_secs(args.keepalive_timeout.max(1)),
            body_timeout: Duration::from_secs(args.body_timeout.max(1)),
            max_connections: args.max_connections.max(1),
        },
        https_listen: args.https_listen,
        serve_threads: args
            .serve_threads
            .map_or_else(fcx_gateway::default_serve_threads, usize::from),
    };
    // Refused before the core touches the host.
    http.check()?;
    // Before the core starts instances: each gets a pooled-connection slot per shard.
    fcx_runtime::shard::set_shards(http.serve_threads);
    let advertise = args.advertise.or_else(|| {
        (!args.listen.ip().is_unspecified() && args.listen.port() != 0)
            .then(|| args.listen.to_string())
    });
    let core = fcx_control::CoreConfig {
        store: args.store,
        node_id: args.node_id,
        advertise: advertise.or_else(|| Some(args.listen.to_string())),
        sync_interval: Duration::from_secs(args.sync_interval.max(1)),
        cluster_max_instances: args.cluster_max_instances,
        forward: args.forward,
        data_dir: args.data_dir,
        run_root: args.run_dir,
        start_timeout: Duration::from_secs(args.start_timeout.max(1)),
        instance_uids: args.instance_uids,
        region: args.region,
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        freeze_after: args.freeze_idle_after.map(Duration::from_secs),
        max_instances: args.max_instances,
        async_workers: args.async_workers,
        async_retry_base: Duration::from_millis(args.async_retry_base_ms),
        oci_runtime: (args.oci_runtime != "none").then_some(args.oci_runtime),
        pids_limit: args.pids_limit,
        instance_scheduling: args.instance_scheduling,
        sandboxes_per_function: args.sandboxes_per_function,
        sandbox_limit: args.sandbox_limit,
        criu: args.criu,
        snapshot_budget: args.snapshot_budget_mb.saturating_mul(1024 * 1024),
        snapshot_lazy_above: args.snapshot_lazy_pages_mb.saturating_mul(1024 * 1024),
        async_error_text: fcx_gateway::error::async_error_text,
        scheduler_error_code: fcx_gateway::error::scheduler_error_code,
        metrics_max_functions: args.metrics_max_functions,
        logs: fcx_runtime::LogSettings {
            max_bytes_per_function: args.log_retention_mb.max(1) * 1024 * 1024,
            max_age: Duration::from_secs(args.log_retention_hours.max(1) * 3600),
            segment_bytes: args.log_segment_mb.max(1) * 1024 * 1024,
            buffer_records: args.log_buffer.max(16),
            files: !args.no_observability,
        },
        record_metrics: !args.no_observability,
        trigger_domain: args.trigger_domain,
        egress: args.egress,
        egress_range: args.egress_range,
        egress_pool: args.egress_pool,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Dropped last: flushes the spans still queued after the server stopped.
    let _otlp = match &args.otlp_endpoint {
        Some(endpoint) => Some(telemetry::init_with_otlp(
            args.log_format,
            endpoint,
            runtime.handle().clone(),
        )?),
        None => {
            telemetry::init_logs(args.log_format);
            None
        }
    };
    runtime.block_on(async {
        let control = fcx_control::ControlPlane::start(core).await?;
        let served = fcx_gateway::serve(Arc::clone(&control), http, shutdown_signal()).await;
        control.shutdown().await;
        // The serving threads end last: what requests started on them (a cold start's log
        // reader and exit watcher) ran until the instances stopped.
        let serving = served?;
        tokio::task::spawn_blocking(move || serving.finish()).await??;
        Ok(())
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
