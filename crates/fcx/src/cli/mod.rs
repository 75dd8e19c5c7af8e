//! The client commands of `fcx`: invoke, ls, get, rm, versions, alias, deploy. They talk to
//! an fcx server (or any FC 3.0 endpoint) over its HTTP API, signing requests like the SDKs.

pub mod client;
pub mod deploy;
pub mod local;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use base64::Engine;
use serde_json::{json, Value};

use client::{seg, ApiError, Client, Config};

/// Exit code: the signature or AccessKey was refused.
pub const EXIT_AUTH: u8 = 3;
/// Exit code: the invoked function failed (`x-fc-error-type`).
pub const EXIT_FUNCTION: u8 = 4;

/// `--output`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Flags every client command takes.
#[derive(clap::Args)]
pub struct GlobalArgs {
    /// Server to talk to (client commands).
    #[arg(
        long,
        global = true,
        env = "FCX_ENDPOINT",
        default_value = "http://127.0.0.1:9100"
    )]
    pub endpoint: String,
    /// AccessKey id to sign requests with (client commands).
    #[arg(long, global = true, env = "FCX_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: Option<String>,
    /// AccessKey secret to sign requests with (client commands).
    #[arg(
        long,
        global = true,
        env = "FCX_ACCESS_KEY_SECRET",
        hide_env_values = true
    )]
    pub access_key_secret: Option<String>,
    /// A credentials file (`access_key_id=`/`access_key_secret=` lines, as `fcx server`
    /// writes to <data dir>/credentials) to sign requests with.
    #[arg(long, global = true)]
    pub credentials: Option<PathBuf>,
    /// Output format of client commands.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub output: Output,
}

/// The client subcommands.
#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Invoke a function (InvokeFunction) and print its result.
    #[command(after_help = "Examples:
  fcx invoke my-fn --event '{\"key\":\"value\"}'
  echo '{\"key\":1}' | fcx invoke my-fn           # event from stdin
  fcx invoke my-fn --event-file event.json --qualifier prod --tail
  fcx invoke my-fn --event '{}' --async           # prints the request id (and task id)

Exit codes: 0 ok, 1 error, 2 usage, 3 auth refused, 4 the function failed.")]
    Invoke {
        /// Function name.
        name: String,
        /// The event, as given.
        #[arg(long, conflicts_with = "event_file")]
        event: Option<String>,
        /// Read the event from this file.
        #[arg(long)]
        event_file: Option<PathBuf>,
        /// Version or alias to invoke.
        #[arg(long)]
        qualifier: Option<String>,
        /// Asynchronous invocation (x-fc-invocation-type: Async).
        #[arg(long = "async")]
        is_async: bool,
        /// Print the function's log (x-fc-log-result) to stderr.
        #[arg(long)]
        tail: bool,
    },
    /// List functions (ListFunctions).
    #[command(after_help = "Examples:
  fcx ls
  fcx ls --prefix api-
  fcx ls --output json | jq '.[].functionName'")]
    Ls {
        /// Only functions whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show a function's configuration (GetFunction).
    #[command(after_help = "Examples:
  fcx get my-fn
  fcx get my-fn --output json")]
    Get {
        /// Function name.
        name: String,
    },
    /// Delete a function (DeleteFunction).
    #[command(after_help = "Examples:
  fcx rm my-fn")]
    Rm {
        /// Function name.
        name: String,
    },
    /// List a function's versions, or publish one.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:
  fcx versions my-fn                 # list
  fcx versions publish my-fn --description 'release 2'"
    )]
    Versions {
        #[command(subcommand)]
        action: Option<VersionsAction>,
        /// Function name (list).
        #[arg(required = true)]
        name: Option<String>,
    },
    /// Manage a function's aliases.
    #[command(
        subcommand,
        after_help = "Examples:
  fcx alias ls my-fn
  fcx alias set my-fn prod 3 --weight 4=0.2
  fcx alias rm my-fn prod"
    )]
    Alias(AliasAction),
    /// Print a function's logs: instance output with FC's per-request markers.
    #[command(after_help = "Examples:
  fcx logs my-fn                                  # the last 200 lines
  fcx logs my-fn --request-id 1f0c2d9e-...        # one request, Start to End marker
  fcx logs my-fn --follow                         # keep printing new lines (Ctrl-C stops)")]
    Logs {
        /// Function name.
        name: String,
        /// Only the lines of this request (between its FC Invoke Start/End markers).
        #[arg(long)]
        request_id: Option<String>,
        /// Keep polling and print new lines as they are written.
        #[arg(long, short = 'f')]
        follow: bool,
        /// How many of the latest lines to print first.
        #[arg(long, default_value_t = 200)]
        tail: usize,
    },
    /// Run a function without a server (`local invoke`).
    #[command(subcommand)]
    Local(LocalAction),
    /// Deploy the fc3 resources of a Serverless Devs project file (s.yaml).
    #[command(after_help = "Examples:
  fcx deploy                         # ./s.yaml
  fcx deploy -f examples/sdeploy/s.yaml
  FCX_ENDPOINT=http://10.0.0.5:9100 fcx deploy -f s.yaml --credentials creds

Supported: resources with `component: fc3`; `props` are CreateFunction fields in
camelCase (functionName, runtime, code, handler, timeout, memorySize, ...), `code: ./dir`
is zipped (modes and symlinks kept), `triggers:` are created, `${env(NAME)}` and
`${vars.x}` are substituted. Existing functions are updated. Unsupported keys are listed
in a warning; `region` is ignored (fcx has one region).")]
    Deploy {
        /// The project file.
        #[arg(
            short = 'f',
            long = "template",
            short_alias = 't',
            default_value = "s.yaml"
        )]
        file: PathBuf,
    },
}

#[derive(clap::Subcommand)]
pub enum LocalAction {
    /// Invoke a code folder or an s.yaml project once, on a private server that is started
    /// and stopped around the call (needs root, like `fcx server`).
    #[command(after_help = "Examples:
  fcx local invoke --code examples/express-event --initializer --event '{\"k\":1}' -- node server.js
  fcx local invoke --code examples/python-event --non-web-server --event '{\"k\":1}' -- python3 main.py
  fcx local invoke -f examples/sdeploy/s.yaml --event '{}' --tail")]
    Invoke {
        /// Project file to deploy (its fc3 functions); choose one with --function.
        #[arg(short = 'f', long = "template", conflicts_with = "code")]
        template: Option<PathBuf>,
        /// Function to invoke (with -f), or the name to give the code folder's function.
        #[arg(long)]
        function: Option<String>,
        /// Code folder to run (with the start command after `--`).
        #[arg(long)]
        code: Option<PathBuf>,
        /// Port the server in the folder listens on.
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// Call POST /initialize once before the invocation.
        #[arg(long)]
        initializer: bool,
        /// Non-web-server mode: run the command once with FC_CUSTOM_CONTAINER_EVENT.
        #[arg(long = "non-web-server")]
        non_web: bool,
        /// The event, as given.
        #[arg(long, conflicts_with = "event_file")]
        event: Option<String>,
        /// Read the event from this file.
        #[arg(long)]
        event_file: Option<PathBuf>,
        /// Print the function's log to stderr.
        #[arg(long)]
        tail: bool,
        /// Start command of the code folder (after `--`).
        #[arg(last = true)]
        command: Vec<String>,
    },
}

#[derive(clap::Subcommand)]
pub enum VersionsAction {
    /// Publish the function's current code and configuration as a new version.
    #[command(after_help = "Examples:
  fcx versions publish my-fn
  fcx versions publish my-fn --description 'release 2'")]
    Publish {
        /// Function name.
        name: String,
        /// Version description.
        #[arg(long)]
        description: Option<String>,
    },
}

#[derive(clap::Subcommand)]
pub enum AliasAction {
    /// List a function's aliases.
    #[command(after_help = "Examples:
  fcx alias ls my-fn")]
    Ls {
        /// Function name.
        name: String,
    },
    /// Create or update an alias.
    #[command(after_help = "Examples:
  fcx alias set my-fn prod 3
  fcx alias set my-fn prod 3 --weight 4=0.2     # 20% of calls go to version 4")]
    Set {
        /// Function name.
        name: String,
        /// Alias name.
        alias: String,
        /// Version the alias points to.
        version: String,
        /// Additional version and its weight (VERSION=0.2); repeatable.
        #[arg(long, value_parser = parse_weight)]
        weight: Vec<(String, f64)>,
        /// Alias description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an alias.
    #[command(after_help = "Examples:
  fcx alias rm my-fn prod")]
    Rm {
        /// Function name.
        name: String,
        /// Alias name.
        alias: String,
    },
}

fn parse_weight(s: &str) -> Result<(String, f64), String> {
    let (v, w) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected VERSION=WEIGHT, e.g. 2=0.2"))?;
    let w: f64 = w
        .parse()
        .map_err(|_| format!("{s:?}: weight must be a number"))?;
    if !(0.0..=1.0).contains(&w) {
        return Err(format!("{s:?}: weight must be between 0 and 1"));
    }
    Ok((v.to_owned(), w))
}

/// Runs a client command; prints errors as `error: <Code>: <Message> (request <id>)`.
pub fn run(cmd: ClientCommand, global: GlobalArgs) -> ExitCode {
    match execute(cmd, &global) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let prefix = paint_err("error:", "1;31");
            if let Some(api) = e.downcast_ref::<ApiError>() {
                eprintln!("{prefix} {api}");
                if api.is_auth() {
                    return ExitCode::from(EXIT_AUTH);
                }
            } else {
                eprintln!("{prefix} {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `text` in ANSI colour `sgr` when stderr is a terminal.
pub fn paint_err(text: &str, sgr: &str) -> String {
    if std::io::stderr().is_terminal() {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn paint_out(text: &str, sgr: &str) -> String {
    if std::io::stdout().is_terminal() {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn connect(global: &GlobalArgs) -> anyhow::Result<Client> {
    let credentials = match (
        &global.access_key_id,
        &global.access_key_secret,
        &global.credentials,
    ) {
        (_, _, Some(file)) => Some(client::read_credentials_file(file)?),
        (Some(id), Some(secret), None) => Some((id.clone(), secret.clone())),
        (Some(_), None, None) | (None, Some(_), None) => {
            return Err(anyhow!(
                "give both --access-key-id and --access-key-secret (or FCX_ACCESS_KEY_ID and FCX_ACCESS_KEY_SECRET)"
            ))
        }
        (None, None, None) => None,
    };
    Client::new(Config {
        endpoint: global.endpoint.trim_end_matches('/').to_owned(),
        credentials,
    })
}

fn fn_path(name: &str) -> String {
    format!("/{}/functions/{}", client::API_VERSION, seg(name))
}

fn print_json(v: &Value) {
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

fn execute(cmd: ClientCommand, global: &GlobalArgs) -> anyhow::Result<u8> {
    let client = connect(global)?;
    let json_out = global.output == Output::Json;
    match cmd {
        ClientCommand::Invoke {
            name,
            event,
            event_file,
            qualifier,
            is_async,
            tail,
        } => {
            let body = match (event, event_file) {
                (Some(e), _) => e.into_bytes(),
                (None, Some(f)) => std::fs::read(&f)
                    .with_context(|| format!("reading the event file {}", f.display()))?,
                (None, None) if !std::io::stdin().is_terminal() => {
                    let mut b = Vec::new();
                    std::io::stdin().read_to_end(&mut b)?;
                    b
                }
                (None, None) => Vec::new(),
            };
            let mut headers = vec![("content-type", "application/octet-stream")];
            if is_async {
                headers.push(("x-fc-invocation-type", "Async"));
            }
            if tail {
                headers.push(("x-fc-log-type", "Tail"));
            }
            let q: Vec<(&str, &str)> = qualifier
                .as_deref()
                .map(|q| vec![("qualifier", q)])
                .unwrap_or_default();
            let r = client.send(
                "POST",
                "InvokeFunction",
                &format!("{}/invocations", fn_path(&name)),
                &q,
                &headers,
                body,
                None,
            )?;
            // A function error (x-fc-error-type) may come with a non-2xx status (502
            // FunctionNotStarted); anything else non-2xx is an API error.
            if !(200..300).contains(&r.status) && r.header("x-fc-error-type").is_none() {
                return Err(client::ApiError::from_response(&r).into());
            }
            let rid = r.header("x-fc-request-id").unwrap_or("").to_owned();
            if tail {
                if let Some(log) = r.header("x-fc-log-result") {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(log.trim())
                        .unwrap_or_else(|_| log.as_bytes().to_vec());
                    let mut err = std::io::stderr();
                    let _ = err.write_all(&decoded);
                    if !decoded.ends_with(b"\n") {
                        let _ = err.write_all(b"\n");
                    }
                }
            }
            if is_async {
                let task = r.header("x-fc-async-task-id").map(str::to_owned);
                if json_out {
                    print_json(&json!({ "requestId": rid, "asyncTaskId": task }));
                } else {
                    println!("requestId: {rid}");
                    if let Some(t) = task {
                        println!("asyncTaskId: {t}");
                    }
                }
                return Ok(0);
            }
            let error_type = r.header("x-fc-error-type").map(str::to_owned);
            if json_out {
                let text = String::from_utf8_lossy(&r.body).into_owned();
                let result = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
                print_json(&json!({
                    "requestId": rid,
                    "errorType": error_type,
                    "result": result,
                }));
            } else {
                let mut out = std::io::stdout();
                out.write_all(&r.body)?;
                out.flush()?;
            }
            if let Some(t) = error_type {
                eprintln!(
                    "{} the function failed ({t}, request {rid})",
                    paint_err("error:", "1;31")
                );
                return Ok(EXIT_FUNCTION);
            }
            Ok(0)
        }
        ClientCommand::Ls { prefix } => {
            let mut all = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut q: Vec<(&str, &str)> = vec![("limit", "100")];
                if let Some(p) = &prefix {
                    q.push(("prefix", p));
                }
                if let Some(t) = &token {
                    q.push(("nextToken", t));
                }
                let v = client
                    .call(
                        "GET",
                        "ListFunctions",
                        &format!("/{}/functions", client::API_VERSION),
                        &q,
                        &[],
                        Vec::new(),
                    )?
                    .json()?;
                if let Some(fs) = v.get("functions").and_then(Value::as_array) {
                    all.extend(fs.iter().cloned());
                }
                token = v
                    .get("nextToken")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            if json_out {
                print_json(&Value::Array(all));
            } else {
                println!(
                    "{}",
                    paint_out(
                        &format!(
                            "{:<32} {:<18} {:>7} {:<25}",
                            "NAME", "RUNTIME", "MEMORY", "MODIFIED"
                        ),
                        "1"
                    )
                );
                for f in &all {
                    println!(
                        "{:<32} {:<18} {:>7} {:<25}",
                        str_of(f, "functionName"),
                        str_of(f, "runtime"),
                        f.get("memorySize")
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        str_of(f, "lastModifiedTime"),
                    );
                }
            }
            Ok(0)
        }
        ClientCommand::Get { name } => {
            let v = client
                .call("GET", "GetFunction", &fn_path(&name), &[], &[], Vec::new())?
                .json()?;
            if json_out {
                print_json(&v);
            } else if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    let shown = match val {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    println!("{}: {shown}", paint_out(k, "1"));
                }
            }
            Ok(0)
        }
        ClientCommand::Rm { name } => {
            client.call(
                "DELETE",
                "DeleteFunction",
                &fn_path(&name),
                &[],
                &[],
                Vec::new(),
            )?;
            if json_out {
                print_json(&json!({ "deleted": name }));
            } else {
                println!("deleted {name}");
            }
            Ok(0)
        }
        ClientCommand::Versions { action, name } => {
            match action {
                Some(VersionsAction::Publish { name, description }) => {
                    let body = json!({ "description": description.unwrap_or_default() });
                    let v = client
                        .call(
                            "POST",
                            "PublishFunctionVersion",
                            &format!("{}/versions", fn_path(&name)),
                            &[],
                            &[],
                            body.to_string().into_bytes(),
                        )?
                        .json()?;
                    if json_out {
                        print_json(&v);
                    } else {
                        println!("published version {}", str_of(&v, "versionId"));
                    }
                }
                None => {
                    let name = name.ok_or_else(|| {
                        anyhow!("give a function name: fcx versions NAME (or fcx versions publish NAME)")
                    })?;
                    let v = client
                        .call(
                            "GET",
                            "ListFunctionVersions",
                            &format!("{}/versions", fn_path(&name)),
                            &[("limit", "100")],
                            &[],
                            Vec::new(),
                        )?
                        .json()?;
                    let versions = v.get("versions").cloned().unwrap_or(json!([]));
                    if json_out {
                        print_json(&versions);
                    } else {
                        println!(
                            "{}",
                            paint_out(
                                &format!("{:<10} {:<25} {}", "VERSION", "CREATED", "DESCRIPTION"),
                                "1"
                            )
                        );
                        for ver in versions.as_array().into_iter().flatten() {
                            println!(
                                "{:<10} {:<25} {}",
                                str_of(ver, "versionId"),
                                str_of(ver, "createdTime"),
                                ver.get("description").and_then(Value::as_str).unwrap_or(""),
                            );
                        }
                    }
                }
            }
            Ok(0)
        }
        ClientCommand::Alias(action) => alias(&client, action, json_out),
        ClientCommand::Deploy { file } => deploy::deploy(&client, &file, json_out),
        ClientCommand::Logs {
            name,
            request_id,
            follow,
            tail,
        } => logs(
            &client,
            &name,
            request_id.as_deref(),
            follow,
            tail,
            json_out,
        ),
        ClientCommand::Local(LocalAction::Invoke {
            template,
            function,
            code,
            port,
            initializer,
            non_web,
            event,
            event_file,
            tail,
            command,
        }) => {
            let spec = local::LocalFunction {
                template: template.as_deref(),
                function: function.as_deref(),
                code: code.as_deref(),
                command: &command,
                port,
                initializer,
                non_web,
            };
            if spec.template.is_none() && spec.command.is_empty() {
                return Err(anyhow!(
                    "give the folder's start command after `--`, e.g. -- node server.js"
                ));
            }
            let server = local::start_server()?;
            let name = local::deploy_local(&server, &spec)?;
            let private = GlobalArgs {
                endpoint: server.endpoint.clone(),
                access_key_id: None,
                access_key_secret: None,
                credentials: None,
                output: global.output,
            };
            execute(
                ClientCommand::Invoke {
                    name,
                    event,
                    event_file,
                    qualifier: None,
                    is_async: false,
                    tail,
                },
                &private,
            )
        }
    }
}

/// `fcx logs`: prints the lines, then with `follow` polls for new ones every second.
fn logs(
    client: &Client,
    name: &str,
    request_id: Option<&str>,
    follow: bool,
    tail: usize,
    json_out: bool,
) -> anyhow::Result<u8> {
    let tail = tail.clamp(1, 10_000).to_string();
    let mut since: Option<String> = None;
    loop {
        let mut q: Vec<(&str, &str)> = vec![("tail", &tail)];
        if let Some(r) = request_id {
            q.push(("requestId", r));
        }
        if let Some(s) = &since {
            q.push(("since", s));
        }
        let v = client
            .call(
                "GET",
                "GetFunctionLogs",
                &format!("{}/logs", fn_path(name)),
                &q,
                &[],
                Vec::new(),
            )?
            .json()?;
        for line in v
            .get("lines")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if json_out {
                let _ = writeln!(std::io::stdout(), "{line}");
            } else {
                let _ = writeln!(
                    std::io::stdout(),
                    "{} {}",
                    paint_out(str_of(line, "instanceId"), "2"),
                    str_of(line, "line")
                );
            }
        }
        if !follow {
            return Ok(0);
        }
        since = v
            .get("nextToken")
            .and_then(Value::as_str)
            .map(str::to_owned);
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn alias(client: &Client, action: AliasAction, json_out: bool) -> anyhow::Result<u8> {
    match action {
        AliasAction::Ls { name } => {
            let v = client
                .call(
                    "GET",
                    "ListAliases",
                    &format!("{}/aliases", fn_path(&name)),
                    &[("limit", "100")],
                    &[],
                    Vec::new(),
                )?
                .json()?;
            let aliases = v.get("aliases").cloned().unwrap_or(json!([]));
            if json_out {
                print_json(&aliases);
            } else {
                println!(
                    "{}",
                    paint_out(
                        &format!("{:<20} {:<10} {}", "ALIAS", "VERSION", "WEIGHTS"),
                        "1"
                    )
                );
                for a in aliases.as_array().into_iter().flatten() {
                    let weights = a
                        .get("additionalVersionWeight")
                        .and_then(Value::as_object)
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    println!(
                        "{:<20} {:<10} {}",
                        str_of(a, "aliasName"),
                        str_of(a, "versionId"),
                        weights
                    );
                }
            }
        }
        AliasAction::Set {
            name,
            alias,
            version,
            weight,
            description,
        } => {
            let weights: serde_json::Map<String, Value> =
                weight.into_iter().map(|(v, w)| (v, json!(w))).collect();
            let mut body = json!({
                "versionId": version,
                "additionalVersionWeight": weights,
            });
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let path = format!("{}/aliases/{}", fn_path(&name), seg(&alias));
            let updated = client.call(
                "PUT",
                "UpdateAlias",
                &path,
                &[],
                &[],
                body.to_string().into_bytes(),
            );
            let v = match updated {
                Ok(r) => r.json()?,
                Err(e)
                    if e.downcast_ref::<ApiError>()
                        .is_some_and(|a| a.status == 404 && a.code.contains("Alias")) =>
                {
                    body["aliasName"] = json!(alias);
                    client
                        .call(
                            "POST",
                            "CreateAlias",
                            &format!("{}/aliases", fn_path(&name)),
                            &[],
                            &[],
                            body.to_string().into_bytes(),
                        )?
                        .json()?
                }
                Err(e) => return Err(e),
            };
            if json_out {
                print_json(&v);
            } else {
                println!("alias {alias} -> version {version}");
            }
        }
        AliasAction::Rm { name, alias } => {
            client.call(
                "DELETE",
                "DeleteAlias",
                &format!("{}/aliases/{}", fn_path(&name), seg(&alias)),
                &[],
                &[],
                Vec::new(),
            )?;
            if json_out {
                print_json(&json!({ "deleted": alias }));
            } else {
                println!("deleted alias {alias}");
            }
        }
    }
    Ok(0)
}
