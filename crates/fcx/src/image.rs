//! `fcx image`: the server's image cache (`<data dir>/images`) from the command line: pull
//! with progress, import OCI layouts and `docker save` archives, list, remove. It works on
//! the data dir directly, with no server: the cache takes per-digest file locks and renames
//! atomically, so this command and a running `fcx server` can share it.

mod format;
mod progress;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use fcx_image::{ImageError, ImageStore, Progress, ProgressFn, RegistryOptions};
use serde_json::{json, Value};

use crate::cli::{paint_err, Output};
use progress::Reporter;

/// `fcx image` subcommands.
#[derive(clap::Subcommand)]
pub enum ImageCommand {
    /// Pull an image into the cache, resolving its tag again; prints the manifest digest.
    #[command(after_help = "Examples:
  fcx image pull registry.example.com/team/app:v1
  fcx image pull 127.0.0.1:5000/app:v1 --data-dir /var/lib/fcx    # loopback registries: plain HTTP
  echo \"$TOKEN\" | fcx image pull registry.example.com/private/app:v1 --username ci --password-stdin
  fcx image pull app@sha256:0123...                                 # an exact manifest

Progress goes to stderr (a bar on a terminal, lines in logs); stdout gets the digest only.
Only linux/amd64 images run (an index's amd64 entry is chosen). A running server sees the
image at once: functions whose image is this reference start from it without a pull.
Exit codes: 0 ok, 1 error (the message says what to change).")]
    Pull(PullArgs),
    /// Import images from an OCI image layout directory or a `docker save` tar.
    #[command(after_help = "Examples:
  docker save app:v1 -o app.tar && fcx image import app.tar
  skopeo copy docker://alpine:3 oci:alpine-oci:3 && fcx image import alpine-oci
  fcx image import app.tar --data-dir /var/lib/fcx

Prints `REFERENCE DIGEST` per imported name (`<none>` for an unnamed image). Every blob's
digest is verified; an image already cached is not unpacked again. Functions use an
imported image by its reference (e.g. docker.io/library/app:v1 for `docker save app:v1`).")]
    Import {
        /// An OCI image layout directory (oci-layout, index.json, blobs/) or a `docker save` tar.
        path: PathBuf,
        #[command(flatten)]
        data: DataDir,
    },
    /// List cached images: reference, digest, unpacked size and age.
    #[command(after_help = "Examples:
  fcx image ls
  fcx image ls --data-dir /var/lib/fcx
  fcx image ls --output json | jq -r '.[].digest'

An image with no reference left (e.g. pulled by digest) is listed as <none>.")]
    Ls {
        #[command(flatten)]
        data: DataDir,
    },
    /// Remove a reference from the cache, or with a digest the image and all its references.
    #[command(after_help = "Examples:
  fcx image rm 127.0.0.1:5000/app:v1
  fcx image rm sha256:4f2e...                     # the full digest, as `fcx image ls --output json` prints it

An image's files are deleted once no reference points to it. Running instances of that
image lose the read-only layer under their root filesystem: remove images no instance
uses (a function that needs one again pulls it when its next instance starts).")]
    Rm {
        /// Reference (as pulled or imported; normalized like docker: busybox =
        /// docker.io/library/busybox:latest) or a full `sha256:` digest.
        reference: String,
        #[command(flatten)]
        data: DataDir,
    },
}

/// `--data-dir`, as `fcx server` takes it.
#[derive(clap::Args)]
pub struct DataDir {
    /// The server's data dir; images are cached in <data dir>/images.
    #[arg(long, env = "FCX_DATA_DIR", default_value = "./.fcx")]
    data_dir: PathBuf,
}

/// Flags of `fcx image pull`.
#[derive(clap::Args)]
pub struct PullArgs {
    /// [REGISTRY/]REPOSITORY[:TAG|@DIGEST]; docker.io and :latest are implied, as in docker.
    reference: String,
    /// Registry account (with --password or --password-stdin).
    #[arg(long, short = 'u', env = "FCX_REGISTRY_USERNAME")]
    username: Option<String>,
    /// Registry password; visible to other users in `ps`, so prefer --password-stdin or
    /// FCX_REGISTRY_PASSWORD.
    #[arg(
        long,
        short = 'p',
        env = "FCX_REGISTRY_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// Read the password from the first line of stdin (instead of --password or
    /// FCX_REGISTRY_PASSWORD).
    #[arg(long)]
    password_stdin: bool,
    /// Accept any TLS certificate from the registry (self-signed, expired). Loopback
    /// registries (localhost, 127.0.0.1) are spoken to over plain HTTP anyway.
    #[arg(long)]
    insecure: bool,
    /// A PEM root certificate to trust for the registry's TLS, besides the system's.
    #[arg(long, value_name = "PEM_FILE")]
    ca_cert: Option<PathBuf>,
    #[command(flatten)]
    data: DataDir,
}

/// Runs an `fcx image` command: `error: <what to do>` on stderr and exit 1 on failure.
pub fn run(cmd: ImageCommand, output: Output) -> ExitCode {
    let json = output == Output::Json;
    let result = match cmd {
        ImageCommand::Pull(args) => pull(args, json),
        ImageCommand::Import { path, data } => import(&path, &data, json),
        ImageCommand::Ls { data } => ls(&data, json),
        ImageCommand::Rm { reference, data } => rm(&reference, &data, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{} {e:#}", paint_err("error:", "1;31"));
            ExitCode::FAILURE
        }
    }
}

fn pull(args: PullArgs, json: bool) -> anyhow::Result<()> {
    let opts = registry_options(&args)?;
    let whole = fcx_image::parse_reference(&args.reference)?.whole();
    let store = open_store(&args.data.data_dir)?;
    let reporter = Arc::new(Reporter::new("pulling", &whole, true));
    let on_progress = progress_fn(&reporter);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(store.pull(&whole, &opts, Some(&*on_progress)));
    let image = match result {
        Ok(image) => image,
        Err(e) => {
            reporter.finish();
            return Err(explain_pull_error(e, &args));
        }
    };
    reporter.line(&format!("done {}", image.digest));
    reporter.finish();
    if json {
        print_json(&json!({
            "reference": whole,
            "digest": image.digest,
            "cached": reporter.was_cached(),
        }));
    } else {
        print_line(&image.digest);
    }
    Ok(())
}

/// Registry options from the flags; the password from stdin when asked.
fn registry_options(args: &PullArgs) -> anyhow::Result<RegistryOptions> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        args.password.clone()
    };
    let credentials = match (&args.username, password) {
        (Some(user), Some(pass)) => Some((user.clone(), pass)),
        (None, None) => None,
        (Some(_), None) => return Err(anyhow!("--username needs --password-stdin or --password")),
        (None, Some(_)) => return Err(anyhow!("a password needs --username")),
    };
    let root_ca_pem = match &args.ca_cert {
        Some(file) => Some(
            std::fs::read(file)
                .with_context(|| format!("reading the CA certificate {}", file.display()))?,
        ),
        None => None,
    };
    Ok(RegistryOptions {
        credentials,
        insecure: args.insecure,
        root_ca_pem,
    })
}

/// The image error, plus what the flags of this command can change about it.
fn explain_pull_error(e: ImageError, args: &PullArgs) -> anyhow::Error {
    let hint = match &e {
        ImageError::Unauthorized { .. } if args.username.is_none() => Some(format!(
            "with fcx image pull: give the account, e.g. fcx image pull {} --username USER --password-stdin",
            args.reference
        )),
        ImageError::Unauthorized { .. } => {
            Some("with fcx image pull: check --username and the password".to_string())
        }
        ImageError::Unreachable { detail, .. } if !args.insecure && is_tls(detail) => Some(
            "if the registry uses a self-signed certificate: --ca-cert FILE or --insecure"
                .to_string(),
        ),
        _ => None,
    };
    match hint {
        Some(h) => anyhow!("{e}\n  {h}"),
        None => e.into(),
    }
}

/// Whether a connection failure came from TLS certificate checks.
fn is_tls(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    ["certificate", "tls", "ssl", "unknownissuer"]
        .iter()
        .any(|w| d.contains(w))
}

fn import(path: &Path, data: &DataDir, json: bool) -> anyhow::Result<()> {
    let store = open_store(&data.data_dir)?;
    let reporter = Arc::new(Reporter::new(
        "importing",
        &path.display().to_string(),
        false,
    ));
    let on_progress = progress_fn(&reporter);
    let result = store.import(path, Some(&*on_progress));
    reporter.finish();
    let images = result?;
    if json {
        let list: Vec<Value> = images
            .iter()
            .map(|(names, img)| json!({ "references": names, "digest": img.digest }))
            .collect();
        print_json(&Value::Array(list));
        return Ok(());
    }
    for (names, img) in &images {
        if names.is_empty() {
            print_line(&format!("<none> {}", img.digest));
        }
        for name in names {
            print_line(&format!("{name} {}", img.digest));
        }
    }
    Ok(())
}

fn ls(data: &DataDir, json: bool) -> anyhow::Result<()> {
    // Listing must not create a data dir where none is.
    let images = match existing_store(&data.data_dir)? {
        Some(store) => store.list()?,
        None => Vec::new(),
    };
    if json {
        print_json(&serde_json::to_value(&images)?);
        return Ok(());
    }
    let now = format::now_unix();
    let mut rows = vec![[
        "REFERENCE".to_string(),
        "DIGEST".to_string(),
        "SIZE".to_string(),
        "AGE".to_string(),
    ]];
    for img in &images {
        let none = ["<none>".to_string()];
        let names = if img.references.is_empty() {
            &none[..]
        } else {
            &img.references[..]
        };
        for name in names {
            rows.push([
                name.clone(),
                format::short_digest(&img.digest),
                format::bytes(img.size),
                format::age(img.created_unix, now),
            ]);
        }
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for [reference, digest, size, age] in &rows {
        print_line(&format!(
            "{reference:<w0$}  {digest:<w1$}  {size:>w2$}  {age}"
        ));
    }
    Ok(())
}

fn rm(reference: &str, data: &DataDir, json: bool) -> anyhow::Result<()> {
    let not_cached = || {
        anyhow!(
            "image {reference} is not in the cache {}; `fcx image ls` lists what is",
            data.data_dir.join("images").display()
        )
    };
    let store = existing_store(&data.data_dir)?.ok_or_else(not_cached)?;
    let digest = store.lookup(reference).map(|img| img.digest);
    match store.remove(reference) {
        Ok(()) => {}
        Err(ImageError::NotFound { .. }) => return Err(not_cached()),
        Err(e) => return Err(e.into()),
    }
    // Removing one of several references keeps the image; say which happened.
    let deleted = digest.filter(|d| store.lookup(d).is_none());
    if json {
        print_json(&json!({ "removed": reference, "deletedImage": deleted }));
        return Ok(());
    }
    match deleted {
        Some(d) => print_line(&format!("removed {reference} (deleted image {d})")),
        None => print_line(&format!("removed {reference}")),
    }
    Ok(())
}

/// The store's progress callback must be `'static`, so it shares the reporter.
fn progress_fn(reporter: &Arc<Reporter>) -> Box<ProgressFn> {
    let reporter = Arc::clone(reporter);
    Box::new(move |p: &Progress| reporter.event(p))
}

/// Opens (creating, 0700 like `fcx server` does) `<data dir>/images`.
fn open_store(data_dir: &Path) -> anyhow::Result<ImageStore> {
    let root = data_dir.join("images");
    ImageStore::open(&root).with_context(|| format!("opening the image cache {}", root.display()))
}

/// The cache, or `None` when the data dir has none yet.
fn existing_store(data_dir: &Path) -> anyhow::Result<Option<ImageStore>> {
    if !data_dir.join("images").is_dir() {
        return Ok(None);
    }
    open_store(data_dir).map(Some)
}

/// A stdout line; a closed pipe (`| head`) is not worth a panic.
fn print_line(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn print_json(v: &Value) {
    print_line(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
}
