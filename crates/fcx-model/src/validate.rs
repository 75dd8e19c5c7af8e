//! Field rules (names, ranges, sizes) shared by create and update.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use crate::input::{Code, LifecycleHookInput, UpdateFunctionInput};
use crate::{ModelError, ACCEPTED_RUNTIMES, RUNTIME_CUSTOM_CONTAINER, UNIMPLEMENTED_CREATE_FIELDS};

/// `timeout` in seconds.
pub(crate) const TIMEOUT: RangeInclusive<u32> = 1..=86400;
/// `memorySize` in MB (also a multiple of 64).
pub(crate) const MEMORY: RangeInclusive<u32> = 128..=32768;
/// `instanceConcurrency`.
pub(crate) const CONCURRENCY: RangeInclusive<u32> = 1..=200;
/// Lifecycle hook timeouts in seconds.
pub(crate) const HOOK_TIMEOUT: RangeInclusive<u32> = 1..=300;
/// Ports.
pub(crate) const PORT: RangeInclusive<u32> = 1..=65535;
/// Allowed `diskSize` values in MB.
pub(crate) const DISK_SIZES: [u32; 2] = [512, 10240];
/// Maximum function name length.
const NAME_MAX: usize = 64;
/// Maximum handler length in characters.
const HANDLER_MAX: usize = 128;
/// Maximum description length in characters.
const DESCRIPTION_MAX: usize = 256;
/// Maximum total size of environment variable names and values, in bytes.
const ENV_MAX_BYTES: usize = 4096;
/// Longest value quoted in a message.
const SHOW_MAX: usize = 64;

/// Quote a user value for a message (escaped, at most 64 characters).
pub(crate) fn show(s: &str) -> String {
    if s.chars().count() > SHOW_MAX {
        let head: String = s.chars().take(SHOW_MAX).collect();
        format!("{head:?}...")
    } else {
        format!("{s:?}")
    }
}

/// A user-supplied key as a path segment (at most 64 characters).
pub(crate) fn path_segment(s: &str) -> String {
    if s.chars().count() > SHOW_MAX {
        let head: String = s.chars().take(SHOW_MAX).collect();
        format!("{head}...")
    } else {
        s.to_string()
    }
}

/// Validate a function name by FC's rule (1–64 chars, letters/digits/_/-, not starting with a
/// digit or '-'); field "functionName".
pub fn validate_function_name(name: &str) -> Result<(), ModelError> {
    let err = |m: String| Err(ModelError::new("functionName", m));
    let len = name.chars().count();
    if len == 0 {
        return err(format!(
            "must be 1 to {NAME_MAX} characters long, got an empty name"
        ));
    }
    if len > NAME_MAX {
        return err(format!(
            "must be 1 to {NAME_MAX} characters long, got {len} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return err(format!(
            "may contain only letters, digits, underscores and hyphens, got {bad:?} in {}",
            show(name)
        ));
    }
    if name.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        return err(format!(
            "must not start with a digit or a hyphen, got {}",
            show(name)
        ));
    }
    Ok(())
}

/// `value` must lie in `range`.
pub(crate) fn check_range(
    field: &str,
    value: u32,
    range: RangeInclusive<u32>,
) -> Result<(), ModelError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ModelError::new(
            field,
            format!(
                "must be between {} and {}, got {value}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// A port, 1..=65535.
pub(crate) fn check_port(field: &str, port: u32) -> Result<u16, ModelError> {
    check_range(field, port, PORT)?;
    u16::try_from(port)
        .map_err(|_| ModelError::new(field, format!("must be between 1 and 65535, got {port}")))
}

pub(crate) fn check_runtime(runtime: &str) -> Result<(), ModelError> {
    if ACCEPTED_RUNTIMES.contains(&runtime) {
        return Ok(());
    }
    Err(ModelError::new(
        "runtime",
        format!(
            "fcx runs custom runtimes and custom containers only, accepted values are {}, got {}",
            ACCEPTED_RUNTIMES.join(", "),
            show(runtime)
        ),
    ))
}

pub(crate) fn check_handler(field: &str, handler: &str) -> Result<(), ModelError> {
    let len = handler.chars().count();
    if len > HANDLER_MAX {
        return Err(ModelError::new(
            field,
            format!("must be at most {HANDLER_MAX} characters long, got {len} characters"),
        ));
    }
    check_no_nul(field, handler)
}

fn check_no_nul(field: &str, s: &str) -> Result<(), ModelError> {
    if s.contains('\0') {
        return Err(ModelError::new(
            field,
            format!("must not contain a NUL character, got {}", show(s)),
        ));
    }
    Ok(())
}

pub(crate) fn check_memory(field: &str, mb: u32) -> Result<(), ModelError> {
    if MEMORY.contains(&mb) && mb % 64 == 0 {
        return Ok(());
    }
    Err(ModelError::new(
        field,
        format!(
            "must be a multiple of 64 between {} and {} (MB), got {mb}",
            MEMORY.start(),
            MEMORY.end()
        ),
    ))
}

pub(crate) fn check_cpu(cpu: f64) -> Result<(), ModelError> {
    let steps = cpu / 0.05;
    let ok = cpu.is_finite()
        && (0.05 - 1e-9..=16.0 + 1e-9).contains(&cpu)
        && (steps - steps.round()).abs() < 1e-6;
    if ok {
        return Ok(());
    }
    Err(ModelError::new(
        "cpu",
        format!("must be a multiple of 0.05 between 0.05 and 16, got {cpu}"),
    ))
}

/// cpu:memory(GB) between 1:1 and 1:4. `field` is the field the caller changed.
pub(crate) fn check_cpu_memory(field: &str, cpu: f64, memory_mb: u32) -> Result<(), ModelError> {
    let gb_per_cpu = f64::from(memory_mb) / 1024.0 / cpu;
    if (1.0 - 1e-9..=4.0 + 1e-9).contains(&gb_per_cpu) {
        return Ok(());
    }
    Err(ModelError::new(
        field,
        format!(
            "cpu to memory ratio must be between 1:1 and 1:4 (1 to 4 GB of memorySize per vCPU), \
             got cpu {cpu} with memorySize {memory_mb}"
        ),
    ))
}

pub(crate) fn check_disk(mb: u32) -> Result<(), ModelError> {
    if DISK_SIZES.contains(&mb) {
        return Ok(());
    }
    Err(ModelError::new(
        "diskSize",
        format!("must be 512 or 10240 (MB), got {mb}"),
    ))
}

pub(crate) fn check_env(env: &BTreeMap<String, String>) -> Result<(), ModelError> {
    let mut total = 0usize;
    for (key, value) in env {
        let field = format!("environmentVariables.{}", path_segment(key));
        let mut chars = key.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            return Err(ModelError::new(
                field,
                format!(
                    "name must start with a letter and contain only letters, digits and underscores, got {}",
                    show(key)
                ),
            ));
        }
        if key.starts_with("FC_") {
            return Err(ModelError::new(
                field,
                format!(
                    "names starting with FC_ are reserved for the platform, got {}",
                    show(key)
                ),
            ));
        }
        check_no_nul(&field, value)?;
        total += key.len() + value.len();
    }
    if total > ENV_MAX_BYTES {
        return Err(ModelError::new(
            "environmentVariables",
            format!(
                "total size of names and values must be at most {ENV_MAX_BYTES} bytes, got {total}"
            ),
        ));
    }
    Ok(())
}

/// Elements of a command-like list: no NUL; non-empty when `non_empty`.
fn check_list(field: &str, items: &[String], non_empty: bool) -> Result<(), ModelError> {
    for (i, item) in items.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if non_empty && item.is_empty() {
            return Err(ModelError::new(f, "must be a non-empty string, got \"\""));
        }
        check_no_nul(&f, item)?;
    }
    Ok(())
}

fn check_code(code: &Code) -> Result<(), ModelError> {
    if code.oss_bucket_name.is_some() || code.oss_object_name.is_some() {
        let field = if code.oss_bucket_name.is_some() {
            "code.ossBucketName"
        } else {
            "code.ossObjectName"
        };
        return Err(ModelError::new(
            field,
            "code from OSS is not supported by fcx, send the package as base64 in code.zipFile",
        ));
    }
    match code.zip_file.as_deref() {
        None => Err(ModelError::new(
            "code.zipFile",
            "required: fcx takes the code package as base64 in code.zipFile",
        )),
        Some("") => Err(ModelError::new(
            "code.zipFile",
            "must be a non-empty base64 zip package, got \"\"",
        )),
        Some(_) => Ok(()),
    }
}

fn check_hook(path: &str, hook: &LifecycleHookInput) -> Result<(), ModelError> {
    if let Some(h) = &hook.handler {
        check_handler(&format!("{path}.handler"), h)?;
    }
    if let Some(t) = hook.timeout {
        check_range(&format!("{path}.timeout"), t, HOOK_TIMEOUT)?;
    }
    if let Some(c) = &hook.command {
        check_list(&format!("{path}.command"), c, false)?;
    }
    Ok(())
}

/// Every rule that concerns one field (or one nested object) alone, and the combinations of
/// `runtime`, `code`, `customRuntimeConfig` and `customContainerConfig` within one body.
pub(crate) fn check_fields(u: &UpdateFunctionInput) -> Result<(), ModelError> {
    if let Some(r) = &u.runtime {
        check_runtime(r)?;
    }
    check_kind_combination(u)?;
    if let Some(h) = &u.handler {
        if h.is_empty() {
            return Err(ModelError::new("handler", "must not be empty"));
        }
        check_handler("handler", h)?;
    }
    if let Some(d) = &u.description {
        let len = d.chars().count();
        if len > DESCRIPTION_MAX {
            return Err(ModelError::new(
                "description",
                format!("must be at most {DESCRIPTION_MAX} characters long, got {len} characters"),
            ));
        }
    }
    if let Some(t) = u.timeout {
        check_range("timeout", t, TIMEOUT)?;
    }
    if let Some(m) = u.memory_size {
        check_memory("memorySize", m)?;
    }
    if let Some(c) = u.cpu {
        check_cpu(c)?;
    }
    if let Some(d) = u.disk_size {
        check_disk(d)?;
    }
    if let Some(c) = u.instance_concurrency {
        check_range("instanceConcurrency", c, CONCURRENCY)?;
    }
    if let Some(env) = &u.environment_variables {
        check_env(env)?;
    }
    if let Some(rc) = &u.custom_runtime_config {
        if let Some(c) = &rc.command {
            check_list("customRuntimeConfig.command", c, true)?;
        }
        if let Some(a) = &rc.args {
            check_list("customRuntimeConfig.args", a, false)?;
        }
        if let Some(p) = rc.port {
            check_port("customRuntimeConfig.port", p)?;
        }
        check_object(
            "customRuntimeConfig.healthCheckConfig",
            &rc.health_check_config,
        )?;
    }
    if let Some(cc) = &u.custom_container_config {
        if let Some(image) = &cc.image {
            if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ModelError::new(
                    "customContainerConfig.image",
                    format!(
                        "must be a non-empty image reference without spaces, got {}",
                        show(image)
                    ),
                ));
            }
        }
        if let Some(e) = &cc.entrypoint {
            check_list("customContainerConfig.entrypoint", e, false)?;
        }
        if let Some(c) = &cc.command {
            check_list("customContainerConfig.command", c, false)?;
        }
        if let Some(p) = cc.port {
            check_port("customContainerConfig.port", p)?;
        }
        check_object(
            "customContainerConfig.healthCheckConfig",
            &cc.health_check_config,
        )?;
        if let Some(rc) = &cc.registry_config {
            rc.check()?;
        }
    }
    if let Some(l) = &u.instance_lifecycle_config {
        for (name, hook) in [
            ("initializer", &l.initializer),
            ("preStop", &l.pre_stop),
            ("preFreeze", &l.pre_freeze),
        ] {
            if let Some(hook) = hook {
                check_hook(&format!("instanceLifecycleConfig.{name}"), hook)?;
            }
        }
    }
    if let Some(p) = u.ca_port {
        check_port("caPort", p)?;
    }
    if let Some(code) = &u.code {
        check_code(code)?;
    }
    for key in u.extra.keys() {
        if !UNIMPLEMENTED_CREATE_FIELDS.contains(&key.as_str()) {
            return Err(ModelError::new(
                path_segment(key),
                "unknown field, not an FC 3.0 function field fcx stores",
            ));
        }
    }
    Ok(())
}

/// Runtime kind rules visible in the body alone (the stored record may add more).
fn check_kind_combination(u: &UpdateFunctionInput) -> Result<(), ModelError> {
    let container_runtime = u.runtime.as_deref().map(|r| r == RUNTIME_CUSTOM_CONTAINER);
    if container_runtime == Some(true) {
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
    }
    if let (Some(false), Some(_)) = (container_runtime, &u.custom_container_config) {
        return Err(ModelError::new(
            "customContainerConfig",
            format!(
                "only allowed with runtime custom-container, got runtime {}",
                show(u.runtime.as_deref().unwrap_or_default())
            ),
        ));
    }
    if u.custom_container_config.is_some() {
        if u.code.is_some() {
            return Err(ModelError::new(
                "code",
                "cannot be combined with customContainerConfig, send exactly one of them",
            ));
        }
        if u.custom_runtime_config.is_some() {
            return Err(ModelError::new(
                "customRuntimeConfig",
                "cannot be combined with customContainerConfig, send exactly one of them",
            ));
        }
    }
    Ok(())
}

fn check_object(field: &str, value: &Option<serde_json::Value>) -> Result<(), ModelError> {
    match value {
        None | Some(serde_json::Value::Object(_)) => Ok(()),
        Some(_) => Err(ModelError::new(field, "must be a json object")),
    }
}
