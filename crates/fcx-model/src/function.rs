//! The resolved function record ([`Function`]): built from a create input, changed by updates,
//! stored as JSON and returned by GetFunction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::input::{
    CreateFunctionInput, CustomContainerConfigInput, CustomRuntimeConfigInput, LifecycleHookInput,
    UpdateFunctionInput,
};
use crate::validate::{self, check_port};
use crate::{
    ModelError, DEFAULT_DISK_SIZE, DEFAULT_HOOK_TIMEOUT, DEFAULT_INSTANCE_CONCURRENCY,
    DEFAULT_MEMORY_SIZE, DEFAULT_PORT, DEFAULT_TIMEOUT, RUNTIME_CUSTOM_CONTAINER,
};

/// The resolved function record: what is stored and what GetFunction returns (FC field names).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Function {
    /// Function name (1–64 chars, letters/digits/`_`/`-`, not starting with a digit or `-`).
    pub function_name: String,
    /// Server-assigned id.
    pub function_id: String,
    /// `acs:fc:<region>:<account>:functions/<name>`.
    pub function_arn: String,
    /// One of [`crate::ACCEPTED_RUNTIMES`].
    pub runtime: String,
    /// Handler (ignored by custom runtimes and containers).
    pub handler: String,
    /// Description, default "".
    pub description: String,
    /// Invocation timeout in seconds, 1..=86400, default 3.
    pub timeout: u32,
    /// Memory in MB, a multiple of 64 in 128..=32768, default 512.
    pub memory_size: u32,
    /// vCPUs, a multiple of 0.05 in 0.05..=16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Disk size in MB, 512 or 10240, default 512.
    pub disk_size: u32,
    /// Concurrent requests per instance, 1..=200, default 1.
    pub instance_concurrency: u32,
    /// Environment variables (names: a letter then letters/digits/`_`, not `FC_*`; ≤ 4 KB total).
    #[serde(default)]
    pub environment_variables: BTreeMap<String, String>,
    /// Whether instances may reach the internet, default true.
    pub internet_access: bool,
    /// Idle timeout in seconds (FC 3.0 field, stored only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u32>,
    /// Custom runtime configuration (custom runtimes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_runtime_config: Option<CustomRuntimeConfig>,
    /// Custom container configuration (present exactly for `custom-container`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_container_config: Option<CustomContainerConfig>,
    /// Lifecycle hooks (always present; each hook optional).
    #[serde(default)]
    pub instance_lifecycle_config: InstanceLifecycleConfig,
    /// fcx extension (not an FC field): snapshot starts (absent: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcx_snapshot: Option<SnapshotConfig>,
    /// Size of the decoded code package in bytes (set by the control plane).
    pub code_size: u64,
    /// CRC-64 of the code package as FC computes it (CRC-64/XZ, decimal; set by the control plane).
    pub code_checksum: String,
    /// SHA-256 of the code package (fcx: names the stored package and its unpacked copy).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code_sha256: String,
    /// Creation time, RFC 3339 UTC (e.g. `2026-11-25T13:36:04Z`).
    pub created_time: String,
    /// Last modification time, RFC 3339 UTC.
    pub last_modified_time: String,
    /// Function state: "Active".
    pub state: String,
    /// FC fields fcx accepts and stores but does not implement yet (vpcConfig, nasConfig,
    /// logConfig, role, tags, layers, ...), returned as-is by GetFunction.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fcxSnapshot`, an fcx extension (not an FC field): start instances by restoring a CRIU
/// snapshot of one taken right after its first successful `/initialize`
/// (docs/snapshots.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotConfig {
    /// Whether snapshot starts are on.
    #[serde(default)]
    pub enabled: bool,
    /// Whether `POST /restore` is called on each restored instance before it serves.
    #[serde(default)]
    pub restore_hook: bool,
}

/// Custom runtime configuration, resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomRuntimeConfig {
    /// Start command; empty means the package's `bootstrap`.
    pub command: Vec<String>,
    /// Arguments appended to the command.
    pub args: Vec<String>,
    /// Port of the instance's HTTP server, default 9000.
    pub port: u16,
    /// Health check (`httpGetUrl`, `initialDelaySeconds`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_config: Option<Value>,
    /// fcx / FC 2.0 extension: whether the instance runs an HTTP server, default true.
    pub web_server_mode: bool,
}

impl Default for CustomRuntimeConfig {
    fn default() -> Self {
        CustomRuntimeConfig {
            command: Vec::new(),
            args: Vec::new(),
            port: DEFAULT_PORT,
            health_check_config: None,
            web_server_mode: true,
        }
    }
}

/// Custom container configuration, resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomContainerConfig {
    /// Image reference.
    pub image: String,
    /// Overrides the image's ENTRYPOINT when non-empty.
    pub entrypoint: Vec<String>,
    /// Overrides the image's CMD when non-empty.
    pub command: Vec<String>,
    /// Port of the container's HTTP server, default 9000.
    pub port: u16,
    /// Health check (`httpGetUrl`, `initialDelaySeconds`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_config: Option<Value>,
    /// FC 2.0 extension: whether the container runs an HTTP server, default true.
    pub web_server_mode: bool,
    /// Registry credentials (the password is a [`crate::Secret`]) and certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_config: Option<crate::RegistryConfig>,
    /// Image acceleration type (stored only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acceleration_type: Option<String>,
    /// ACR Enterprise Edition instance id (stored only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr_instance_id: Option<String>,
    /// Resolved image digest reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_image_uri: Option<String>,
}

impl Default for CustomContainerConfig {
    fn default() -> Self {
        CustomContainerConfig {
            image: String::new(),
            entrypoint: Vec::new(),
            command: Vec::new(),
            port: DEFAULT_PORT,
            health_check_config: None,
            web_server_mode: true,
            registry_config: None,
            acceleration_type: None,
            acr_instance_id: None,
            resolved_image_uri: None,
        }
    }
}

/// Lifecycle hooks, resolved.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct InstanceLifecycleConfig {
    /// Initializer, called once per instance before its first invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initializer: Option<LifecycleHook>,
    /// Pre-stop hook, called before an instance is stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<LifecycleHook>,
    /// FC 2.0 extension: pre-freeze hook, called before an idle instance is frozen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_freeze: Option<LifecycleHook>,
}

/// One configured lifecycle hook.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHook {
    /// Handler (non-empty: a hook is configured when it has a handler).
    pub handler: String,
    /// Timeout in seconds, 1..=300, default 3.
    #[serde(default = "default_hook_timeout")]
    pub timeout: u32,
    /// Command run for the hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

fn default_hook_timeout() -> u32 {
    DEFAULT_HOOK_TIMEOUT
}

impl Function {
    /// Build the record from a create input. `now` is the timestamp string; region/account for
    /// the ARN; function_id given by caller. `code_size` / `code_checksum` start at 0 / "" for
    /// the control plane to fill in. All rules are re-checked except that `code` must be present
    /// for custom runtimes ([`crate::parse_create`] checks that): the caller may take `code` out
    /// first.
    pub fn from_create(
        input: CreateFunctionInput,
        function_id: String,
        region: &str,
        account_id: &str,
        now: &str,
    ) -> Result<Function, ModelError> {
        let (name, update) = input.into_update();
        build(
            name.as_deref(),
            &update,
            function_id,
            region,
            account_id,
            now,
            false,
        )
    }

    /// Apply an update (only given fields change; sets last_modified_time). Re-validates
    /// cross-field rules. On error the function is left unchanged. Nested configs and hooks are
    /// merged field by field; `environmentVariables` is replaced; an `extra` field set to null is
    /// removed. Switching to a custom runtime does not require `code` here (the caller may have
    /// taken it out); a `code` that is present is rejected for custom containers.
    pub fn apply_update(
        &mut self,
        input: UpdateFunctionInput,
        now: &str,
    ) -> Result<(), ModelError> {
        let mut next = self.clone();
        apply(&mut next, &input, false, false)?;
        next.last_modified_time = now.to_string();
        *self = next;
        Ok(())
    }

    /// Effective listen port (customRuntimeConfig.port or customContainerConfig.port, default 9000).
    pub fn port(&self) -> u16 {
        if let Some(c) = &self.custom_container_config {
            c.port
        } else if let Some(r) = &self.custom_runtime_config {
            r.port
        } else {
            DEFAULT_PORT
        }
    }

    /// Whether invocations use an HTTP server in the instance (web-server mode, default true).
    pub fn web_server_mode(&self) -> bool {
        if let Some(c) = &self.custom_container_config {
            c.web_server_mode
        } else if let Some(r) = &self.custom_runtime_config {
            r.web_server_mode
        } else {
            true
        }
    }

    /// The initializer hook if configured.
    /// Whether instances start from snapshots (the `fcxSnapshot` extension).
    pub fn snapshot_enabled(&self) -> bool {
        self.fcx_snapshot.as_ref().is_some_and(|s| s.enabled)
    }

    /// Whether restored instances get `POST /restore` before they serve.
    pub fn restore_hook(&self) -> bool {
        self.fcx_snapshot
            .as_ref()
            .is_some_and(|s| s.enabled && s.restore_hook)
    }

    /// The initializer hook, when the function has one.
    pub fn initializer(&self) -> Option<&LifecycleHook> {
        self.instance_lifecycle_config.initializer.as_ref()
    }

    /// Whether the function runs a custom container (else a custom runtime with a code package).
    pub fn is_custom_container(&self) -> bool {
        self.runtime == RUNTIME_CUSTOM_CONTAINER
    }
}

/// All create-time rules, without keeping the result (used by [`crate::parse_create`]).
pub(crate) fn check_create(name: Option<&str>, u: &UpdateFunctionInput) -> Result<(), ModelError> {
    build(name, u, String::new(), "local", "0", "", true).map(|_| ())
}

fn missing(field: &str) -> ModelError {
    ModelError::new(field, "required field is missing")
}

fn build(
    name: Option<&str>,
    u: &UpdateFunctionInput,
    function_id: String,
    region: &str,
    account_id: &str,
    now: &str,
    require_code: bool,
) -> Result<Function, ModelError> {
    let name = name.ok_or_else(|| missing("functionName"))?;
    validate::validate_function_name(name)?;
    let runtime = u.runtime.as_deref().ok_or_else(|| missing("runtime"))?;
    if u.handler.is_none() {
        return Err(missing("handler"));
    }
    let mut f = Function {
        function_name: name.to_string(),
        function_id,
        function_arn: format!("acs:fc:{region}:{account_id}:functions/{name}"),
        runtime: runtime.to_string(),
        handler: String::new(),
        description: String::new(),
        timeout: DEFAULT_TIMEOUT,
        memory_size: DEFAULT_MEMORY_SIZE,
        cpu: None,
        disk_size: DEFAULT_DISK_SIZE,
        instance_concurrency: DEFAULT_INSTANCE_CONCURRENCY,
        environment_variables: BTreeMap::new(),
        internet_access: true,
        idle_timeout: None,
        custom_runtime_config: None,
        custom_container_config: None,
        instance_lifecycle_config: InstanceLifecycleConfig::default(),
        fcx_snapshot: None,
        code_size: 0,
        code_checksum: String::new(),
        code_sha256: String::new(),
        created_time: now.to_string(),
        last_modified_time: now.to_string(),
        state: "Active".to_string(),
        extra: Map::new(),
    };
    apply(&mut f, u, true, require_code)?;
    Ok(f)
}

/// Apply `u` to `f`. `creating`: `f` is a fresh record (the cpu:memory ratio is checked only when
/// both are given). `require_code`: custom runtimes must come with `code`.
fn apply(
    f: &mut Function,
    u: &UpdateFunctionInput,
    creating: bool,
    require_code: bool,
) -> Result<(), ModelError> {
    validate::check_fields(u)?;

    let was_container = !creating && f.is_custom_container();
    if let Some(r) = &u.runtime {
        f.runtime = r.clone();
    }
    if f.is_custom_container() {
        apply_container(f, u, was_container)?;
    } else {
        apply_custom_runtime(f, u, require_code, was_container)?;
    }

    if let Some(h) = &u.handler {
        f.handler = h.clone();
    }
    if let Some(d) = &u.description {
        f.description = d.clone();
    }
    if let Some(t) = u.timeout {
        f.timeout = t;
    }
    if let Some(m) = u.memory_size {
        f.memory_size = m;
    }
    if let Some(c) = u.cpu {
        f.cpu = Some(c);
    }
    if let Some(d) = u.disk_size {
        f.disk_size = d;
    }
    if let Some(c) = u.instance_concurrency {
        f.instance_concurrency = c;
    }
    if let Some(env) = &u.environment_variables {
        f.environment_variables = env.clone();
    }
    if let Some(i) = u.internet_access {
        f.internet_access = i;
    }
    if let Some(i) = u.idle_timeout {
        f.idle_timeout = Some(i);
    }

    let check_ratio = if creating {
        u.cpu.is_some() && u.memory_size.is_some()
    } else {
        u.cpu.is_some() || u.memory_size.is_some()
    };
    if let (true, Some(cpu)) = (check_ratio, f.cpu) {
        let field = if u.cpu.is_some() { "cpu" } else { "memorySize" };
        validate::check_cpu_memory(field, cpu, f.memory_size)?;
    }

    if let Some(l) = &u.instance_lifecycle_config {
        let hooks = &mut f.instance_lifecycle_config;
        merge_hook(
            "instanceLifecycleConfig.initializer",
            &mut hooks.initializer,
            l.initializer.as_ref(),
        )?;
        merge_hook(
            "instanceLifecycleConfig.preStop",
            &mut hooks.pre_stop,
            l.pre_stop.as_ref(),
        )?;
        merge_hook(
            "instanceLifecycleConfig.preFreeze",
            &mut hooks.pre_freeze,
            l.pre_freeze.as_ref(),
        )?;
    }

    if let Some(s) = &u.fcx_snapshot {
        let current = f.fcx_snapshot.clone().unwrap_or_default();
        f.fcx_snapshot = Some(SnapshotConfig {
            enabled: s.enabled.unwrap_or(current.enabled),
            restore_hook: s.restore_hook.unwrap_or(current.restore_hook),
        });
    }

    for (key, value) in &u.extra {
        if value.is_null() {
            f.extra.remove(key);
        } else {
            f.extra.insert(key.clone(), value.clone());
        }
    }
    Ok(())
}

fn apply_container(
    f: &mut Function,
    u: &UpdateFunctionInput,
    was_container: bool,
) -> Result<(), ModelError> {
    if u.code.is_some() {
        return Err(ModelError::new(
            "code",
            "not allowed with runtime custom-container, the image is customContainerConfig.image",
        ));
    }
    if u.custom_runtime_config.is_some() {
        return Err(ModelError::new(
            "customRuntimeConfig",
            "only allowed with custom runtimes, got runtime custom-container",
        ));
    }
    let base = if was_container {
        f.custom_container_config.take()
    } else {
        None
    };
    let mut config = match (base, &u.custom_container_config) {
        (None, None) => {
            return Err(ModelError::new(
                "customContainerConfig",
                "required for runtime custom-container",
            ))
        }
        (base, Some(input)) => merge_container(base.unwrap_or_default(), input)?,
        (Some(base), None) => base,
    };
    if config.image.is_empty() {
        return Err(ModelError::new(
            "customContainerConfig.image",
            "required for runtime custom-container",
        ));
    }
    if let Some(p) = u.ca_port {
        let given = u.custom_container_config.as_ref().and_then(|c| c.port);
        check_ca_port(p, given, "customContainerConfig.port")?;
        config.port = check_port("caPort", p)?;
    }
    f.custom_runtime_config = None;
    f.custom_container_config = Some(config);
    Ok(())
}

fn apply_custom_runtime(
    f: &mut Function,
    u: &UpdateFunctionInput,
    require_code: bool,
    was_container: bool,
) -> Result<(), ModelError> {
    if u.custom_container_config.is_some() {
        return Err(ModelError::new(
            "customContainerConfig",
            format!(
                "only allowed with runtime custom-container, got runtime {}",
                validate::show(&f.runtime)
            ),
        ));
    }
    if require_code && u.code.is_none() {
        return Err(ModelError::new(
            "code",
            format!(
                "required for runtime {} (a base64 zip package in code.zipFile)",
                validate::show(&f.runtime)
            ),
        ));
    }
    f.custom_container_config = None;
    if was_container {
        f.custom_runtime_config = None;
    }
    if let Some(input) = &u.custom_runtime_config {
        let base = f.custom_runtime_config.take().unwrap_or_default();
        f.custom_runtime_config = Some(merge_runtime(base, input)?);
    }
    if let Some(p) = u.ca_port {
        let given = u.custom_runtime_config.as_ref().and_then(|c| c.port);
        check_ca_port(p, given, "customRuntimeConfig.port")?;
        let port = check_port("caPort", p)?;
        f.custom_runtime_config
            .get_or_insert_with(Default::default)
            .port = port;
    }
    Ok(())
}

fn check_ca_port(ca_port: u32, given: Option<u32>, other: &str) -> Result<(), ModelError> {
    match given {
        Some(p) if p != ca_port => Err(ModelError::new(
            "caPort",
            format!("FC 2.0 caPort {ca_port} conflicts with {other} {p}"),
        )),
        _ => Ok(()),
    }
}

fn merge_runtime(
    mut c: CustomRuntimeConfig,
    i: &CustomRuntimeConfigInput,
) -> Result<CustomRuntimeConfig, ModelError> {
    if let Some(v) = &i.command {
        c.command = v.clone();
    }
    if let Some(v) = &i.args {
        c.args = v.clone();
    }
    if let Some(p) = i.port {
        c.port = check_port("customRuntimeConfig.port", p)?;
    }
    if let Some(v) = &i.health_check_config {
        c.health_check_config = Some(v.clone());
    }
    if let Some(v) = i.web_server_mode {
        c.web_server_mode = v;
    }
    Ok(c)
}

fn merge_container(
    mut c: CustomContainerConfig,
    i: &CustomContainerConfigInput,
) -> Result<CustomContainerConfig, ModelError> {
    if let Some(v) = &i.image {
        c.image = v.clone();
    }
    if let Some(v) = &i.entrypoint {
        c.entrypoint = v.clone();
    }
    if let Some(v) = &i.command {
        c.command = v.clone();
    }
    if let Some(p) = i.port {
        c.port = check_port("customContainerConfig.port", p)?;
    }
    if let Some(v) = &i.health_check_config {
        c.health_check_config = Some(v.clone());
    }
    if let Some(v) = i.web_server_mode {
        c.web_server_mode = v;
    }
    if let Some(v) = &i.registry_config {
        c.registry_config = Some(crate::RegistryConfig::replaced_by(
            c.registry_config.as_ref(),
            v,
        ));
    }
    if let Some(v) = &i.acceleration_type {
        c.acceleration_type = Some(v.clone());
    }
    if let Some(v) = &i.acr_instance_id {
        c.acr_instance_id = Some(v.clone());
    }
    if let Some(v) = &i.resolved_image_uri {
        c.resolved_image_uri = Some(v.clone());
    }
    Ok(c)
}

/// Merge a hook input into the stored hook. The result is removed when its handler is empty.
fn merge_hook(
    path: &str,
    slot: &mut Option<LifecycleHook>,
    input: Option<&LifecycleHookInput>,
) -> Result<(), ModelError> {
    let Some(input) = input else {
        return Ok(());
    };
    let old = slot.take();
    let handler = input
        .handler
        .clone()
        .or_else(|| old.as_ref().map(|h| h.handler.clone()))
        .unwrap_or_default();
    let timeout = input
        .timeout
        .or_else(|| old.as_ref().map(|h| h.timeout))
        .unwrap_or(DEFAULT_HOOK_TIMEOUT);
    let command = input
        .command
        .clone()
        .or_else(|| old.and_then(|h| h.command));
    if handler.is_empty() {
        if command.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(ModelError::new(
                format!("{path}.handler"),
                "required when the hook has a command (an empty handler removes the hook)",
            ));
        }
        return Ok(());
    }
    *slot = Some(LifecycleHook {
        handler,
        timeout,
        command,
    });
    Ok(())
}
