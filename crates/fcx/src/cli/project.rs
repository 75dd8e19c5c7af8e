//! `fcx deploy`: the `fc3` resources of a Serverless Devs project file (s.yaml).
//!
//! ```yaml
//! edition: 3.0.0
//! vars: { region: cn-hangzhou }
//! resources:
//!   hello:
//!     component: fc3
//!     props:
//!       region: ${vars.region}        # ignored: fcx has one region
//!       functionName: hello
//!       runtime: custom.debian12
//!       code: ./code                  # zipped, relative to the s.yaml
//!       customRuntimeConfig: { command: [node, server.js], port: 9000 }
//!       environmentVariables: { TOKEN: "${env(TOKEN)}" }
//!       triggers: [ { triggerName: http, triggerType: http, triggerConfig: {...} } ]
//! ```

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine;
use serde_json::{json, Map, Value};

use super::client::{seg, ApiError, Client, API_VERSION};
use super::{paint_err, print_json};

/// The request fields of FC 3.0 CreateFunction (API 2023-03-30).
pub const CREATE_FUNCTION_FIELDS: &[&str] = &[
    "functionName",
    "description",
    "runtime",
    "handler",
    "code",
    "timeout",
    "memorySize",
    "cpu",
    "diskSize",
    "instanceConcurrency",
    "environmentVariables",
    "internetAccess",
    "idleTimeout",
    "customRuntimeConfig",
    "customContainerConfig",
    "customDNS",
    "instanceLifecycleConfig",
    "layers",
    "logConfig",
    "nasConfig",
    "ossMountConfig",
    "role",
    "vpcConfig",
    "gpuConfig",
    "tracingConfig",
    "tags",
    "sessionAffinity",
    "sessionAffinityConfig",
    "instanceIsolationMode",
    "disableOndemand",
    "resourceGroupId",
];

/// Keys of `props` fcx handles itself (not sent as CreateFunction fields).
const HANDLED_PROPS: &[&str] = &["region", "triggers"];

/// The fields of FC 3.0 CreateTrigger.
const CREATE_TRIGGER_FIELDS: &[&str] = &[
    "triggerName",
    "triggerType",
    "triggerConfig",
    "description",
    "qualifier",
    "sourceArn",
    "invocationRole",
];

/// Top-level keys of a project file that fcx reads or that carry no deployment meaning.
const TOP_LEVEL_KEYS: &[&str] = &["edition", "name", "access", "vars", "resources", "template"];

/// A resource to deploy.
#[derive(Debug)]
pub struct Plan {
    pub id: String,
    /// CreateFunction body (code not yet packed when `code_dir` is set).
    pub function: Map<String, Value>,
    pub code_dir: Option<PathBuf>,
    pub triggers: Vec<Map<String, Value>>,
}

/// What a project file asks for, and what fcx cannot do from it.
#[derive(Debug, Default)]
pub struct Project {
    pub plans: Vec<Plan>,
    pub warnings: Vec<String>,
}

/// Reads and checks a project file (no server involved).
pub fn load(file: &Path) -> anyhow::Result<Project> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let doc: Value = serde_json::to_value(yaml).with_context(|| {
        format!(
            "{}: unsupported YAML (tags or non-string keys?)",
            file.display()
        )
    })?;
    let base = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let top = doc
        .as_object()
        .ok_or_else(|| anyhow!("{}: expected a mapping at the top", file.display()))?;
    let vars = top.get("vars").cloned().unwrap_or(Value::Null);
    let mut project = Project::default();
    let unknown_top: Vec<&str> = top
        .keys()
        .map(String::as_str)
        .filter(|k| !TOP_LEVEL_KEYS.contains(k))
        .collect();
    if !unknown_top.is_empty() {
        project.warnings.push(format!(
            "unsupported top-level keys ignored: {}",
            unknown_top.join(", ")
        ));
    }
    if top.contains_key("template") {
        project
            .warnings
            .push("`template` is not supported: props are used as written".into());
    }
    let resources = top
        .get("resources")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("{}: no `resources:` mapping", file.display()))?;
    for (id, res) in resources {
        let res = substitute(res, &vars).with_context(|| format!("resource {id}"))?;
        let component = res.get("component").and_then(Value::as_str).unwrap_or("");
        if component != "fc3" {
            project.warnings.push(format!(
                "resource {id}: component {component:?} is not supported (only fc3); skipped"
            ));
            continue;
        }
        let unknown_res: Vec<&str> = res
            .as_object()
            .map(|o| {
                o.keys()
                    .map(String::as_str)
                    .filter(|k| !["component", "props", "actions", "extend"].contains(k))
                    .collect()
            })
            .unwrap_or_default();
        if !unknown_res.is_empty() {
            project.warnings.push(format!(
                "resource {id}: unsupported keys ignored: {}",
                unknown_res.join(", ")
            ));
        }
        for k in ["actions", "extend"] {
            if res.get(k).is_some() {
                project
                    .warnings
                    .push(format!("resource {id}: `{k}` is not supported; ignored"));
            }
        }
        let props = res
            .get("props")
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("resource {id}: no `props:` mapping"))?;
        let mut function = Map::new();
        let mut unknown = Vec::new();
        for (k, v) in props {
            if CREATE_FUNCTION_FIELDS.contains(&k.as_str()) {
                function.insert(k.clone(), v.clone());
            } else if !HANDLED_PROPS.contains(&k.as_str()) {
                unknown.push(k.as_str());
            }
        }
        if !unknown.is_empty() {
            project.warnings.push(format!(
                "resource {id}: props not in FC 3.0 CreateFunction, ignored: {}",
                unknown.join(", ")
            ));
        }
        if let Some(r) = props.get("region") {
            project.warnings.push(format!(
                "resource {id}: region {} ignored (fcx serves one region)",
                r.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| r.to_string())
            ));
        }
        if function
            .get("functionName")
            .and_then(Value::as_str)
            .map_or(true, str::is_empty)
        {
            bail!("resource {id}: props.functionName is required");
        }
        let code_dir = match function.get("code") {
            Some(Value::String(dir)) => {
                let p = base.join(dir);
                if !p.exists() {
                    bail!(
                        "resource {id}: code {dir:?}: {} does not exist",
                        p.display()
                    );
                }
                Some(p)
            }
            Some(Value::Object(_)) | None => None,
            Some(other) => bail!("resource {id}: code must be a path or a mapping, not {other}"),
        };
        let mut triggers = Vec::new();
        match props.get("triggers") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for (i, t) in list.iter().enumerate() {
                    let t = t
                        .as_object()
                        .ok_or_else(|| anyhow!("resource {id}: triggers[{i}] is not a mapping"))?;
                    let mut out = Map::new();
                    let mut unknown = Vec::new();
                    for (k, v) in t {
                        if !CREATE_TRIGGER_FIELDS.contains(&k.as_str()) {
                            unknown.push(k.as_str());
                        } else if k == "triggerConfig" && !v.is_string() {
                            // The API takes it as a JSON string; s.yaml writes a mapping.
                            out.insert(k.clone(), Value::String(v.to_string()));
                        } else {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    if !unknown.is_empty() {
                        project.warnings.push(format!(
                            "resource {id}: triggers[{i}] keys not in FC 3.0 CreateTrigger, ignored: {}",
                            unknown.join(", ")
                        ));
                    }
                    triggers.push(out);
                }
            }
            Some(_) => bail!("resource {id}: triggers must be a list"),
        }
        project.plans.push(Plan {
            id: id.clone(),
            function,
            code_dir,
            triggers,
        });
    }
    Ok(project)
}

/// `${env(NAME)}` and `${vars.a.b}` in every string of `v`.
fn substitute(v: &Value, vars: &Value) -> anyhow::Result<Value> {
    Ok(match v {
        Value::String(s) => {
            let whole = s.trim();
            // A string that is just one `${vars.x}` takes the variable's value as it is
            // (numbers, mappings), as Serverless Devs does.
            if whole.starts_with("${")
                && whole.ends_with('}')
                && whole[2..].find('}') == Some(whole.len() - 3)
            {
                let expr = &whole[2..whole.len() - 1];
                if let Some(path) = expr.trim().strip_prefix("vars.") {
                    return lookup_var(vars, path);
                }
            }
            Value::String(interpolate(s, vars)?)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, vars))
                .collect::<anyhow::Result<_>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), substitute(x, vars)?)))
                .collect::<anyhow::Result<_>>()?,
        ),
        other => other.clone(),
    })
}

fn lookup_var(vars: &Value, path: &str) -> anyhow::Result<Value> {
    let mut cur = vars;
    for part in path.split('.') {
        cur = cur
            .get(part)
            .ok_or_else(|| anyhow!("${{vars.{path}}}: no such variable under `vars:`"))?;
    }
    Ok(cur.clone())
}

fn interpolate(s: &str, vars: &Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| anyhow!("unterminated ${{ in {s:?}"))?;
        let expr = after[..end].trim();
        if let Some(path) = expr.strip_prefix("vars.") {
            match lookup_var(vars, path)? {
                Value::String(v) => out.push_str(&v),
                other => out.push_str(&other.to_string()),
            }
        } else if let Some(name) = expr.strip_prefix("env(").and_then(|x| x.strip_suffix(')')) {
            let name = name.trim().trim_matches(|c| c == '\'' || c == '"');
            let v = std::env::var(name)
                .map_err(|_| anyhow!("${{env({name})}}: environment variable {name} is not set"))?;
            out.push_str(&v);
        } else {
            bail!("${{{expr}}} in {s:?}: only ${{env(NAME)}} and ${{vars.x}} are supported");
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A zip of `path` (a directory's contents, or one file), unix modes and symlinks kept.
pub fn zip_path(path: &Path) -> anyhow::Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        add_dir(&mut w, path, path)?;
    } else {
        use std::os::unix::fs::PermissionsExt;
        let name = path
            .file_name()
            .ok_or_else(|| anyhow!("{}: no file name", path.display()))?
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".zip") {
            return Ok(std::fs::read(path)?);
        }
        let opts = SimpleFileOptions::default().unix_permissions(meta.permissions().mode() & 0o777);
        w.start_file(name, opts)?;
        w.write_all(&std::fs::read(path)?)?;
    }
    Ok(w.finish()?.into_inner())
}

fn add_dir(
    w: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>,
    root: &Path,
    dir: &Path,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    use zip::write::SimpleFileOptions;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path)?;
        let mode = meta.permissions().mode() & 0o777;
        let opts = SimpleFileOptions::default()
            .unix_permissions(mode)
            .large_file(meta.len() >= 0xFFFF_FFFF);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            w.add_symlink(rel, target.to_string_lossy(), opts)?;
        } else if meta.is_dir() {
            w.add_directory(format!("{rel}/"), opts)?;
            add_dir(w, root, &path)?;
        } else {
            w.start_file(rel, opts)?;
            w.write_all(
                &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            )?;
        }
    }
    Ok(())
}

/// Deploys every fc3 resource of `file`.
/// `fcx deploy`: applies the project and prints one line (or JSON object) per resource.
pub fn deploy(client: &Client, file: &Path, json_out: bool) -> anyhow::Result<u8> {
    let results = apply(client, file)?;
    if json_out {
        print_json(&Value::Array(results));
    } else {
        for r in &results {
            println!(
                "{}\t{}\t{}",
                r["resource"].as_str().unwrap_or(""),
                r["functionName"].as_str().unwrap_or(""),
                r["action"].as_str().unwrap_or("")
            );
        }
    }
    Ok(0)
}

/// Creates or updates every fc3 resource of the project file; one JSON object per resource
/// (`resource`, `functionName`, `action`, `function`, `triggers`).
pub fn apply(client: &Client, file: &Path) -> anyhow::Result<Vec<Value>> {
    let project = load(file)?;
    for w in &project.warnings {
        eprintln!("{} {w}", paint_err("warning:", "1;33"));
    }
    let mut results = Vec::new();
    for plan in project.plans {
        let name = plan
            .function
            .get("functionName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut body = plan.function.clone();
        if let Some(dir) = &plan.code_dir {
            let zip = zip_path(dir).with_context(|| format!("packing {}", dir.display()))?;
            eprintln!(
                "fcx: {}: packed {} ({} KiB)",
                plan.id,
                dir.display(),
                zip.len().div_ceil(1024)
            );
            body.insert(
                "code".into(),
                json!({ "zipFile": base64::engine::general_purpose::STANDARD.encode(&zip) }),
            );
        }
        let payload = Value::Object(body.clone()).to_string().into_bytes();
        let functions = format!("/{API_VERSION}/functions");
        let created = client.call_with_progress(
            "POST",
            "CreateFunction",
            &functions,
            &[],
            &[],
            payload,
            progress_bar(&name),
        );
        let (action, v) = match created {
            Ok(r) => ("created", r.json()?),
            Err(e)
                if e.downcast_ref::<ApiError>()
                    .is_some_and(|a| a.code == "FunctionAlreadyExists") =>
            {
                body.remove("functionName");
                let payload = Value::Object(body).to_string().into_bytes();
                let r = client.call_with_progress(
                    "PUT",
                    "UpdateFunction",
                    &format!("{functions}/{}", seg(&name)),
                    &[],
                    &[],
                    payload,
                    progress_bar(&name),
                )?;
                ("updated", r.json()?)
            }
            Err(e) => return Err(e.context(format!("deploying {}", plan.id))),
        };
        eprintln!("fcx: {}: function {name} {action}", plan.id);
        let mut trigger_names = Vec::new();
        for t in &plan.triggers {
            let tname = t
                .get("triggerName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let tpath = format!("{functions}/{}/triggers", seg(&name));
            let r = client.call(
                "POST",
                "CreateTrigger",
                &tpath,
                &[],
                &[],
                Value::Object(t.clone()).to_string().into_bytes(),
            );
            let taction = match r {
                Ok(_) => "created",
                Err(e)
                    if e.downcast_ref::<ApiError>()
                        .is_some_and(|a| a.code == "TriggerAlreadyExists") =>
                {
                    let mut u = t.clone();
                    for k in ["triggerName", "triggerType", "sourceArn"] {
                        u.remove(k);
                    }
                    client.call(
                        "PUT",
                        "UpdateTrigger",
                        &format!("{tpath}/{}", seg(&tname)),
                        &[],
                        &[],
                        Value::Object(u).to_string().into_bytes(),
                    )?;
                    "updated"
                }
                Err(e) => return Err(e.context(format!("{}: trigger {tname}", plan.id))),
            };
            eprintln!("fcx: {}: trigger {tname} {taction}", plan.id);
            trigger_names.push(tname);
        }
        results.push(json!({
            "resource": plan.id,
            "functionName": name,
            "action": action,
            "function": v,
            "triggers": trigger_names,
        }));
    }
    Ok(results)
}

/// An upload progress bar, when stderr is a terminal.
fn progress_bar(name: &str) -> Option<super::client::Progress> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("uploading {name}"));
    Some(Box::new(move |sent, total| {
        bar.set_length(total);
        bar.set_position(sent);
        if sent >= total {
            bar.finish_and_clear();
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_env_and_vars() {
        std::env::set_var("FCX_TEST_DEPLOY_VAR", "abc");
        let vars = json!({ "region": "cn-hangzhou", "n": 3, "deep": { "x": "y" } });
        let v = substitute(
            &json!({
                "a": "${env(FCX_TEST_DEPLOY_VAR)}-${vars.region}",
                "b": "${vars.n}",
                "c": ["${vars.deep.x}"],
            }),
            &vars,
        )
        .unwrap();
        assert_eq!(v, json!({ "a": "abc-cn-hangzhou", "b": 3, "c": ["y"] }));
        assert!(substitute(&json!("${vars.missing}"), &vars).is_err());
        assert!(substitute(&json!("${env(FCX_SURELY_UNSET_VAR_1)}"), &vars).is_err());
        assert!(substitute(&json!("${other}"), &vars).is_err());
    }
}
