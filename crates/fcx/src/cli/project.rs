//! The `s.yaml` loader: the `fc3` resources of a Serverless Devs project file, checked and
//! turned into FC 3.0 CreateFunction / CreateTrigger bodies, with no server involved. The API
//! calls are `commands/deploy.rs`; which props are CreateFunction fields is fcx-model's list.
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

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine;
use serde_json::{json, Map, Value};

use super::package;

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

impl Plan {
    /// The function's name (the loader checked it is there).
    pub fn function_name(&self) -> &str {
        self.function
            .get("functionName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The CreateFunction body, with a `code: ./dir` zipped into `code.zipFile`.
    pub fn function_body(&self) -> anyhow::Result<Map<String, Value>> {
        let mut body = self.function.clone();
        if let Some(dir) = &self.code_dir {
            let zip =
                package::zip_path(dir).with_context(|| format!("packing {}", dir.display()))?;
            eprintln!(
                "fcx: {}: packed {} ({} KiB)",
                self.id,
                dir.display(),
                zip.len().div_ceil(1024)
            );
            body.insert(
                "code".into(),
                json!({ "zipFile": base64::engine::general_purpose::STANDARD.encode(&zip) }),
            );
        }
        Ok(body)
    }
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
            if fcx_model::is_create_function_field(k) {
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

/// Fuzzing the `s.yaml` loader with proptest: arbitrary text, and YAML documents built from
/// s.yaml's keys (`resources`, `props`, `vars`, `${vars.x}` / `${env(X)}` references, code
/// paths) with values of every type. Loading answers a project or an error, never a panic,
/// Budget: `FCX_FUZZ_CASES`,
/// `FCX_FUZZ_SEED` (see `scripts/fuzz.sh`).
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    const KEYS: &[&str] = &[
        "edition",
        "name",
        "access",
        "vars",
        "resources",
        "component",
        "props",
        "region",
        "functionName",
        "runtime",
        "code",
        "handler",
        "memorySize",
        "customRuntimeConfig",
        "command",
        "template",
        "actions",
        "environmentVariables",
        "timeout",
        "x",
    ];

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            proptest::sample::select(vec![
                "${vars.x}",
                "${vars.x.y}",
                "${env(HOME)}",
                "${env(FCX_SURELY_UNSET_9)}",
                "${",
                "${}",
                "${vars.",
                "fc3",
                "./code",
                "../..",
                "/",
                "custom.debian12",
                "${vars.x}${vars.x}",
            ])
            .prop_map(|s| Value::String(s.into())),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                    |kv| Value::Object(
                        kv.into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<_, _>>()
                    )
                ),
            ]
        })
    }

    #[test]
    fn s_yaml_loads_or_is_refused_without_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        let doc = prop_oneof![
            any::<String>(),
            value().prop_map(|v| serde_yaml::to_string(&v).unwrap_or_default()),
            value().prop_map(|v| {
                let mut top = serde_json::json!({"edition": "3.0.0", "name": "fz",
                    "resources": {"f": {"component": "fc3", "props": v}}});
                top["vars"] = serde_json::json!({"x": {"y": 1}});
                serde_yaml::to_string(&top).unwrap_or_default()
            }),
        ];
        fcx_fuzz::run("s.yaml", 256, doc, |text| {
            std::fs::write(&file, &text).unwrap();
            // Packing `code` (a directory to zip) is left out: a fuzzed `/` would zip
            // the whole host.
            if let Ok(project) = super::load(&file) {
                for plan in &project.plans {
                    let _ = plan.function_name();
                }
            }
            Ok(())
        });
    }
}
