//! The command-line shape of the client commands (clap structs): the flags every client
//! command takes ([`GlobalArgs`]) and the subcommands with their help. `fcx server`, `fcx
//! image` and `fcx doctor` have theirs beside their code.

use std::path::PathBuf;

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
    Invoke(InvokeArgs),
    /// List functions (ListFunctions).
    #[command(after_help = "Examples:
  fcx ls
  fcx ls --prefix api-
  fcx ls --output json | jq '.[].functionName'")]
    Ls(LsArgs),
    /// Show a function's configuration (GetFunction).
    #[command(after_help = "Examples:
  fcx get my-fn
  fcx get my-fn --output json")]
    Get(NameArg),
    /// Delete a function (DeleteFunction).
    #[command(after_help = "Examples:
  fcx rm my-fn")]
    Rm(NameArg),
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
    /// List a function's triggers with the URL each HTTP trigger is served at.
    #[command(
        subcommand,
        after_help = "Examples:
  fcx triggers ls my-fn                  # NAME TYPE QUALIFIER URL / SCHEDULE
  fcx triggers ls my-fn --output json
  curl http://my-fn.localhost:9100/      # an anonymous HTTP trigger's URL

Triggers are created with CreateTrigger (an FC SDK) or `triggers:` in an s.yaml (fcx deploy)."
    )]
    Triggers(TriggersAction),
    /// Print a function's logs: instance output with FC's per-request markers.
    #[command(after_help = "Examples:
  fcx logs my-fn                                  # the last 200 lines
  fcx logs my-fn --request-id 1f0c2d9e-...        # one request, Start to End marker
  fcx logs my-fn --follow                         # keep printing new lines (Ctrl-C stops)
  fcx logs my-fn --from 2026-12-01T10:00:00Z --to 2026-12-01T11:00:00Z -t")]
    Logs(LogsArgs),
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
    Deploy(DeployArgs),
}
// `fcx invoke`.
#[derive(clap::Args)]
pub struct InvokeArgs {
    /// Function name.
    pub name: String,
    /// The event, as given.
    #[arg(long, conflicts_with = "event_file")]
    pub event: Option<String>,
    /// Read the event from this file.
    #[arg(long)]
    pub event_file: Option<PathBuf>,
    /// Version or alias to invoke.
    #[arg(long)]
    pub qualifier: Option<String>,
    /// Asynchronous invocation (x-fc-invocation-type: Async).
    #[arg(long = "async")]
    pub is_async: bool,
    /// Print the function's log (x-fc-log-result) to stderr.
    #[arg(long)]
    pub tail: bool,
}

// `fcx ls`.
#[derive(clap::Args)]
pub struct LsArgs {
    /// Only functions whose name starts with this.
    #[arg(long)]
    pub prefix: Option<String>,
}

// `fcx get` and `fcx rm`: one function.
#[derive(clap::Args)]
pub struct NameArg {
    /// Function name.
    pub name: String,
}

// `fcx logs`.
#[derive(clap::Args)]
pub struct LogsArgs {
    /// Function name.
    pub name: String,
    /// Only the lines of this request (its markers and what the function printed for it).
    #[arg(long)]
    pub request_id: Option<String>,
    /// Only the lines of this instance.
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Only lines at or after this time (RFC 3339 UTC, e.g. 2026-12-01T11:00:00Z, or Unix
    /// milliseconds); pages forward from there instead of printing the latest lines.
    #[arg(long)]
    pub from: Option<String>,
    /// Only lines at or before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// Keep polling and print new lines as they are written (also across log rotations).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// How many of the latest lines to print first (without --from).
    #[arg(long, default_value_t = 200)]
    pub tail: usize,
    /// Print each line with its time and request id.
    #[arg(long, short = 't')]
    pub timestamps: bool,
}

// `fcx deploy`.
#[derive(clap::Args)]
pub struct DeployArgs {
    /// The project file.
    #[arg(
        short = 'f',
        long = "template",
        short_alias = 't',
        default_value = "s.yaml"
    )]
    pub file: PathBuf,
}

// `fcx local invoke`.
#[derive(clap::Args)]
pub struct LocalInvokeArgs {
    /// Project file to deploy (its fc3 functions); choose one with --function.
    #[arg(short = 'f', long = "template", conflicts_with = "code")]
    pub template: Option<PathBuf>,
    /// Function to invoke (with -f), or the name to give the code folder's function.
    #[arg(long)]
    pub function: Option<String>,
    /// Code folder to run (with the start command after `--`).
    #[arg(long)]
    pub code: Option<PathBuf>,
    /// Port the server in the folder listens on.
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// Call POST /initialize once before the invocation.
    #[arg(long)]
    pub initializer: bool,
    /// Non-web-server mode: run the command once with FC_CUSTOM_CONTAINER_EVENT.
    #[arg(long = "non-web-server")]
    pub non_web: bool,
    /// The event, as given.
    #[arg(long, conflicts_with = "event_file")]
    pub event: Option<String>,
    /// Read the event from this file.
    #[arg(long)]
    pub event_file: Option<PathBuf>,
    /// Print the function's log to stderr.
    #[arg(long)]
    pub tail: bool,
    /// Start command of the code folder (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

// `fcx local ...`.
#[derive(clap::Subcommand)]
pub enum LocalAction {
    /// Invoke a code folder or an s.yaml project once, on a private server that is started
    /// and stopped around the call (needs root, like `fcx server`).
    #[command(after_help = "Examples:
  fcx local invoke --code examples/express-event --initializer --event '{\"k\":1}' -- node server.js
  fcx local invoke --code examples/python-event --non-web-server --event '{\"k\":1}' -- python3 main.py
  fcx local invoke -f examples/sdeploy/s.yaml --event '{}' --tail")]
    Invoke(LocalInvokeArgs),
}

// `fcx triggers ...`.
#[derive(clap::Subcommand)]
pub enum TriggersAction {
    /// List a function's triggers (ListTriggers): HTTP triggers with their URL, timers
    /// with their schedule.
    #[command(after_help = "Examples:
  fcx triggers ls my-fn
  fcx triggers ls my-fn --output json | jq '.[].httpTrigger.urlInternet'")]
    Ls {
        /// Function name.
        name: String,
    },
}

// `fcx versions ...`.
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

// `fcx alias ...`.
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

// `fcx keys`: the AccessKeys of a data dir, managed without a server.
#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Create an AccessKey; its secret is printed this once.
    #[command(after_help = "Example:
  fcx keys create --data-dir /var/lib/fcx --description ci
  # then, in an FC SDK: Config(access_key_id=ID, access_key_secret=SECRET,
  #                            endpoint=\"127.0.0.1:9100\", protocol=\"http\")")]
    Create {
        #[command(flatten)]
        data: DataDirArg,
        /// What the key is for (shown by `fcx keys ls`).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List AccessKey ids (never their secrets).
    Ls {
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(clap::Args)]
pub struct DataDirArg {
    /// The server's data dir (where its keys live, and its secret.key).
    #[arg(long, env = "FCX_DATA_DIR", default_value = "./.fcx")]
    pub data_dir: PathBuf,
    /// The server's store: `sqlite` (the data dir's database) or the PostgreSQL URL the
    /// nodes share.
    #[arg(long, env = "FCX_STORE", default_value = "sqlite")]
    pub store: fcx_store::StoreUrl,
}

#[cfg(test)]
mod tests {
    use super::parse_weight;

    #[test]
    fn weights_are_version_equals_a_fraction() {
        assert_eq!(parse_weight("4=0.2"), Ok(("4".to_owned(), 0.2)));
        assert!(parse_weight("4")
            .unwrap_err()
            .contains("expected VERSION=WEIGHT"));
        assert!(parse_weight("4=x")
            .unwrap_err()
            .contains("must be a number"));
        assert!(parse_weight("4=1.5")
            .unwrap_err()
            .contains("between 0 and 1"));
    }
}
