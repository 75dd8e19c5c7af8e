//! JSON bodies of CreateFunction / UpdateFunction → [`CreateFunctionInput`] /
//! [`UpdateFunctionInput`]: syntax, types (with the field path), unknown fields, FC 2.0 aliases.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::input::{
    Code, CreateFunctionInput, CustomContainerConfigInput, CustomRuntimeConfigInput,
    InstanceLifecycleConfigInput, LifecycleHookInput, SnapshotConfigInput, UpdateFunctionInput,
};
use crate::validate::{self, show};
use crate::ModelError;

/// FC 3.0 CreateFunction fields fcx implements.
const IMPLEMENTED_FIELDS: &[&str] = &[
    "functionName",
    "runtime",
    "handler",
    "description",
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
    "instanceLifecycleConfig",
    "code",
    // fcx extensions (not FC fields; documented in docs/snapshots.md).
    "fcxSnapshot",
];

/// FC 2.0 spellings accepted at the top level and mapped onto their FC 3.0 places.
const FC2_ALIASES: &[&str] = &["initializer", "initializationTimeout", "caPort"];

/// FC 3.0 CreateFunctionInput fields fcx accepts, stores in `extra` and returns, without
/// implementing them (from the FC 3.0 SDK models).
pub const UNIMPLEMENTED_CREATE_FIELDS: &[&str] = &[
    "customDNS",
    "disableInjectCredentials",
    "disableOndemand",
    "enableLongLiving",
    "gpuConfig",
    "instanceIsolationMode",
    "juiceFsConfig",
    "layers",
    "logConfig",
    "nasConfig",
    "ossMountConfig",
    "polarFsConfig",
    "resourceGroupId",
    "role",
    "sessionAffinity",
    "sessionAffinityConfig",
    "tags",
    "tracingConfig",
    "vpcConfig",
];

/// Fields of [`UNIMPLEMENTED_CREATE_FIELDS`] that UpdateFunction does not take.
pub const CREATE_ONLY_FIELDS: &[&str] = &["tags", "resourceGroupId"];

/// Whether `name` is a request field of FC 3.0 CreateFunction (API 2023-03-30): one fcx
/// implements or one it stores without implementing. FC 2.0 aliases are not. This is the one
/// list of those fields; the CLI's `s.yaml` loader uses it too.
pub fn is_create_function_field(name: &str) -> bool {
    IMPLEMENTED_FIELDS.contains(&name) || UNIMPLEMENTED_CREATE_FIELDS.contains(&name)
}

#[derive(Clone, Copy)]
enum Op {
    Create,
    Update,
}

impl Op {
    fn api(self) -> &'static str {
        match self {
            Op::Create => "CreateFunction",
            Op::Update => "UpdateFunction",
        }
    }

    /// The FC 3.0 fields of this operation that fcx stores without implementing.
    fn unimplemented(self) -> impl Iterator<Item = &'static str> {
        UNIMPLEMENTED_CREATE_FIELDS
            .iter()
            .copied()
            .filter(move |k| matches!(self, Op::Create) || !CREATE_ONLY_FIELDS.contains(k))
    }

    fn is_unimplemented(self, key: &str) -> bool {
        self.unimplemented().any(|k| k == key)
    }
}

/// Parse + validate a CreateFunction JSON body.
pub fn parse_create(body: &[u8]) -> Result<CreateFunctionInput, ModelError> {
    let (raw, extra) = parse_raw(body, Op::Create)?;
    let (name, mut update) = normalize(raw)?;
    update.extra = extra;
    crate::function::check_create(name.as_deref(), &update)?;
    Ok(CreateFunctionInput::from_update(name, update))
}

/// Parse + validate an UpdateFunction JSON body for function `name`. Rules that depend on the
/// stored function (its runtime kind, the cpu:memory ratio) are checked by
/// [`crate::Function::apply_update`]; call it with `code` still in the input to have a code
/// package rejected for a custom-container function.
pub fn parse_update(name: &str, body: &[u8]) -> Result<UpdateFunctionInput, ModelError> {
    let (raw, extra) = parse_raw(body, Op::Update)?;
    let (body_name, mut update) = normalize(raw)?;
    if let Some(body_name) = body_name {
        if body_name != name {
            return Err(ModelError::new(
                "functionName",
                format!(
                    "cannot be changed by UpdateFunction, got {} for function {}",
                    show(&body_name),
                    show(name)
                ),
            ));
        }
    }
    update.extra = extra;
    validate::check_fields(&update)?;
    Ok(update)
}

/// The top-level body as deserialized (after fields kept in `extra` were taken out).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawInput {
    function_name: Option<String>,
    runtime: Option<String>,
    handler: Option<String>,
    description: Option<String>,
    timeout: Option<u32>,
    memory_size: Option<u32>,
    cpu: Option<f64>,
    disk_size: Option<u32>,
    instance_concurrency: Option<u32>,
    environment_variables: Option<BTreeMap<String, String>>,
    internet_access: Option<bool>,
    idle_timeout: Option<u32>,
    custom_runtime_config: Option<CustomRuntimeConfigInput>,
    custom_container_config: Option<RawContainerConfig>,
    instance_lifecycle_config: Option<InstanceLifecycleConfigInput>,
    code: Option<Code>,
    fcx_snapshot: Option<SnapshotConfigInput>,
    /// FC 2.0: initializer handler.
    initializer: Option<String>,
    /// FC 2.0: initializer timeout.
    initialization_timeout: Option<u32>,
    /// FC 2.0: port of the custom runtime / container.
    ca_port: Option<u32>,
}

/// `customContainerConfig` as sent: FC 3.0 names plus FC 2.0 `args`, `instanceID`,
/// `webServerMode`, and FC 2.0's string-encoded lists.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawContainerConfig {
    image: Option<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    entrypoint: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_string_list")]
    command: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_string_list")]
    args: Option<Vec<String>>,
    port: Option<u32>,
    #[serde(default, deserialize_with = "de_health_check")]
    health_check_config: Option<Value>,
    web_server_mode: Option<bool>,
    registry_config: Option<crate::RegistryConfigInput>,
    acceleration_type: Option<String>,
    #[serde(alias = "instanceID")]
    acr_instance_id: Option<String>,
    resolved_image_uri: Option<String>,
    /// Output-only FC 3.0 field: accepted (a GetFunction result may be sent back) and ignored.
    #[allow(dead_code)]
    acceleration_info: Option<IgnoredAny>,
}

/// Health check shape, used to validate `healthCheckConfig` before storing it as JSON.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HealthCheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    http_get_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_delay_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    success_threshold: Option<u32>,
}

/// Deserialize `healthCheckConfig`, checking its field names and types.
pub(crate) fn de_health_check<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    let hc: Option<HealthCheck> = Option::deserialize(d)?;
    hc.map(|h| serde_json::to_value(h).map_err(de::Error::custom))
        .transpose()
}

/// A list of strings, or (FC 2.0) a string holding a JSON list of strings; `""` means absent.
fn de_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Option<Vec<String>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of strings (or, as in FC 2.0, a string holding a JSON list)")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(ListVisitor)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(Some(items))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            if s.trim().is_empty() {
                return Ok(None);
            }
            serde_json::from_str::<Vec<String>>(s)
                .map(Some)
                .map_err(|e| {
                    E::custom(format!(
                        "a string here must hold a JSON list of strings (FC 2.0 form), got {}: {e}",
                        show(s)
                    ))
                })
        }
    }

    d.deserialize_any(ListVisitor)
}

/// Syntax, top-level field names and types. Returns the typed body and the FC fields kept in
/// `extra`.
fn parse_raw(body: &[u8], op: Op) -> Result<(RawInput, Map<String, Value>), ModelError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ModelError::new("body", format!("invalid json: {e}")))?;
    let mut map = match value {
        Value::Object(map) => map,
        other => {
            return Err(ModelError::new(
                "body",
                format!("must be a json object, got {}", json_kind(&other)),
            ))
        }
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    let mut extra = Map::new();
    for key in keys {
        if IMPLEMENTED_FIELDS.contains(&key.as_str()) || FC2_ALIASES.contains(&key.as_str()) {
            continue;
        }
        if op.is_unimplemented(&key) {
            if let Some(v) = map.remove(&key) {
                extra.insert(key, v);
            }
            continue;
        }
        return Err(unknown_field(&key, op));
    }
    let raw =
        serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| type_error(e, op))?;
    Ok((raw, extra))
}

fn unknown_field(key: &str, op: Op) -> ModelError {
    let mut message = format!("unknown field, not an FC 3.0 {} field", op.api());
    let suggestion = IMPLEMENTED_FIELDS
        .iter()
        .chain(FC2_ALIASES)
        .copied()
        .chain(op.unimplemented())
        .find(|k| k.eq_ignore_ascii_case(key));
    if let Some(s) = suggestion {
        message.push_str(&format!(" (did you mean {s}?)"));
    }
    ModelError::new(validate::path_segment(key), message)
}

fn type_error(e: serde_path_to_error::Error<serde_json::Error>, op: Op) -> ModelError {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let inner = e.inner().to_string();
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        if let Some((name, tail)) = rest.split_once('`') {
            let name = validate::path_segment(name);
            let field = if path.is_empty() {
                name
            } else if path.ends_with(&format!(".{name}")) || path == name {
                path
            } else {
                format!("{path}.{name}")
            };
            let mut message = format!("unknown field, not an FC 3.0 {} field", op.api());
            let expected = tail.trim_start_matches(',').trim();
            if !expected.is_empty() {
                message.push_str(&format!(" ({expected})"));
            }
            return ModelError::new(field, message);
        }
    }
    ModelError::new(if path.is_empty() { "body".into() } else { path }, inner)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Map FC 2.0 spellings onto FC 3.0 places.
fn normalize(raw: RawInput) -> Result<(Option<String>, UpdateFunctionInput), ModelError> {
    let mut lifecycle = raw.instance_lifecycle_config;
    if raw.initializer.is_some() || raw.initialization_timeout.is_some() {
        let alias = if raw.initializer.is_some() {
            "initializer"
        } else {
            "initializationTimeout"
        };
        if lifecycle.as_ref().is_some_and(|l| l.initializer.is_some()) {
            return Err(ModelError::new(
                alias,
                "FC 2.0 field cannot be combined with instanceLifecycleConfig.initializer",
            ));
        }
        if let Some(t) = raw.initialization_timeout {
            validate::check_range("initializationTimeout", t, validate::HOOK_TIMEOUT)?;
        }
        lifecycle.get_or_insert_with(Default::default).initializer = Some(LifecycleHookInput {
            handler: raw.initializer,
            timeout: raw.initialization_timeout,
            command: None,
        });
    }

    let container = match raw.custom_container_config {
        None => None,
        Some(c) => {
            let (entrypoint, command) = match c.args {
                // FC 2.0: command = ENTRYPOINT, args = CMD.
                Some(args) => {
                    if c.entrypoint.is_some() {
                        return Err(ModelError::new(
                            "customContainerConfig.args",
                            "FC 2.0 args cannot be combined with entrypoint, use entrypoint and command (FC 3.0)",
                        ));
                    }
                    (c.command, Some(args))
                }
                None => (c.entrypoint, c.command),
            };
            Some(CustomContainerConfigInput {
                image: c.image,
                entrypoint,
                command,
                port: c.port,
                health_check_config: c.health_check_config,
                web_server_mode: c.web_server_mode,
                registry_config: c.registry_config,
                acceleration_type: c.acceleration_type,
                acr_instance_id: c.acr_instance_id,
                resolved_image_uri: c.resolved_image_uri,
            })
        }
    };

    let update = UpdateFunctionInput {
        runtime: raw.runtime,
        handler: raw.handler,
        description: raw.description,
        timeout: raw.timeout,
        memory_size: raw.memory_size,
        cpu: raw.cpu,
        disk_size: raw.disk_size,
        instance_concurrency: raw.instance_concurrency,
        environment_variables: raw.environment_variables,
        internet_access: raw.internet_access,
        idle_timeout: raw.idle_timeout,
        custom_runtime_config: raw.custom_runtime_config,
        custom_container_config: container,
        instance_lifecycle_config: lifecycle,
        fcx_snapshot: raw.fcx_snapshot,
        ca_port: raw.ca_port,
        code: raw.code,
        extra: Map::new(),
    };
    Ok((raw.function_name, update))
}
