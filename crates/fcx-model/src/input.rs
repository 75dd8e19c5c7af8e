//! Request bodies of CreateFunction and UpdateFunction after parsing: every field optional, FC 2.0
//! aliases already mapped onto their FC 3.0 places (see [`crate::parse_create`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// CreateFunction body, parsed and normalized. Build a [`crate::Function`] from it with
/// [`crate::Function::from_create`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreateFunctionInput {
    /// Function name (required).
    pub function_name: Option<String>,
    /// Runtime: one of [`crate::ACCEPTED_RUNTIMES`] (required).
    pub runtime: Option<String>,
    /// Handler; required by FC, ignored by custom runtimes and containers.
    pub handler: Option<String>,
    /// Free-text description, at most 256 characters.
    pub description: Option<String>,
    /// Invocation timeout in seconds, 1..=86400.
    pub timeout: Option<u32>,
    /// Memory in MB: a multiple of 64 in 128..=32768.
    pub memory_size: Option<u32>,
    /// vCPUs: a multiple of 0.05 in 0.05..=16.
    pub cpu: Option<f64>,
    /// Disk size in MB: 512 or 10240.
    pub disk_size: Option<u32>,
    /// Concurrent requests per instance, 1..=200.
    pub instance_concurrency: Option<u32>,
    /// Environment variables of the instances.
    pub environment_variables: Option<BTreeMap<String, String>>,
    /// Whether instances may reach the internet.
    pub internet_access: Option<bool>,
    /// Idle timeout in seconds (FC 3.0 field, stored only).
    pub idle_timeout: Option<u32>,
    /// Custom runtime configuration (custom runtimes only).
    pub custom_runtime_config: Option<CustomRuntimeConfigInput>,
    /// Custom container configuration (`custom-container` only).
    pub custom_container_config: Option<CustomContainerConfigInput>,
    /// Lifecycle hooks; the FC 2.0 top-level `initializer` / `initializationTimeout` end up here.
    pub instance_lifecycle_config: Option<InstanceLifecycleConfigInput>,
    /// fcx extension (not an FC field): snapshot starts.
    pub fcx_snapshot: Option<SnapshotConfigInput>,
    /// FC 2.0 `caPort`: overrides the port of whichever config the function has.
    pub ca_port: Option<u32>,
    /// Code package (custom runtimes only).
    pub code: Option<Code>,
    /// FC 3.0 fields fcx accepts and stores without implementing them (`vpcConfig`, `role`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// UpdateFunction body, parsed and normalized: the same fields as [`CreateFunctionInput`] except
/// `functionName` (which may appear in the body only if it equals the path's name). Apply it with
/// [`crate::Function::apply_update`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFunctionInput {
    /// New runtime; switching between a custom runtime and `custom-container` needs `code` or
    /// `customContainerConfig` in the same update.
    pub runtime: Option<String>,
    /// New handler.
    pub handler: Option<String>,
    /// New description, at most 256 characters.
    pub description: Option<String>,
    /// New timeout in seconds, 1..=86400.
    pub timeout: Option<u32>,
    /// New memory size in MB.
    pub memory_size: Option<u32>,
    /// New vCPUs.
    pub cpu: Option<f64>,
    /// New disk size in MB.
    pub disk_size: Option<u32>,
    /// New instance concurrency.
    pub instance_concurrency: Option<u32>,
    /// Replaces the whole environment-variable map.
    pub environment_variables: Option<BTreeMap<String, String>>,
    /// New internet access flag.
    pub internet_access: Option<bool>,
    /// New idle timeout in seconds.
    pub idle_timeout: Option<u32>,
    /// Merged field by field into the stored custom runtime configuration.
    pub custom_runtime_config: Option<CustomRuntimeConfigInput>,
    /// Merged field by field into the stored custom container configuration.
    pub custom_container_config: Option<CustomContainerConfigInput>,
    /// Hooks merged field by field; a hook whose resulting handler is empty is removed.
    pub instance_lifecycle_config: Option<InstanceLifecycleConfigInput>,
    /// fcx extension (not an FC field): snapshot starts, merged field by field.
    pub fcx_snapshot: Option<SnapshotConfigInput>,
    /// FC 2.0 `caPort`: overrides the port of whichever config the function has.
    pub ca_port: Option<u32>,
    /// New code package (the control plane decodes it and updates code size and checksum).
    pub code: Option<Code>,
    /// FC 3.0 fields fcx stores without implementing; a `null` value removes the stored field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CreateFunctionInput {
    /// Split into the function name and the remaining fields as an update.
    pub fn into_update(self) -> (Option<String>, UpdateFunctionInput) {
        let update = UpdateFunctionInput {
            runtime: self.runtime,
            handler: self.handler,
            description: self.description,
            timeout: self.timeout,
            memory_size: self.memory_size,
            cpu: self.cpu,
            disk_size: self.disk_size,
            instance_concurrency: self.instance_concurrency,
            environment_variables: self.environment_variables,
            internet_access: self.internet_access,
            idle_timeout: self.idle_timeout,
            custom_runtime_config: self.custom_runtime_config,
            custom_container_config: self.custom_container_config,
            instance_lifecycle_config: self.instance_lifecycle_config,
            fcx_snapshot: self.fcx_snapshot,
            ca_port: self.ca_port,
            code: self.code,
            extra: self.extra,
        };
        (self.function_name, update)
    }

    /// Inverse of [`CreateFunctionInput::into_update`].
    pub fn from_update(function_name: Option<String>, update: UpdateFunctionInput) -> Self {
        CreateFunctionInput {
            function_name,
            runtime: update.runtime,
            handler: update.handler,
            description: update.description,
            timeout: update.timeout,
            memory_size: update.memory_size,
            cpu: update.cpu,
            disk_size: update.disk_size,
            instance_concurrency: update.instance_concurrency,
            environment_variables: update.environment_variables,
            internet_access: update.internet_access,
            idle_timeout: update.idle_timeout,
            custom_runtime_config: update.custom_runtime_config,
            custom_container_config: update.custom_container_config,
            instance_lifecycle_config: update.instance_lifecycle_config,
            fcx_snapshot: update.fcx_snapshot,
            ca_port: update.ca_port,
            code: update.code,
            extra: update.extra,
        }
    }
}

/// `fcxSnapshot` as sent (an fcx extension, not an FC field).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotConfigInput {
    /// Start instances from a snapshot taken right after the first `/initialize`.
    pub enabled: Option<bool>,
    /// Call `POST /restore` on every instance restored from a snapshot, before it serves.
    pub restore_hook: Option<bool>,
}

/// Code package of a custom-runtime function. fcx supports `zipFile` only.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Code {
    /// Base64 of the zip package (not decoded here).
    pub zip_file: Option<String>,
    /// OSS bucket of the package (not supported by fcx).
    pub oss_bucket_name: Option<String>,
    /// OSS object of the package (not supported by fcx).
    pub oss_object_name: Option<String>,
    /// Client-computed CRC-64 of the package (accepted; fcx does not check it yet).
    pub checksum: Option<String>,
}

/// `customRuntimeConfig` as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomRuntimeConfigInput {
    /// Start command (default: the package's `bootstrap`); elements must be non-empty.
    pub command: Option<Vec<String>>,
    /// Arguments appended to the command.
    pub args: Option<Vec<String>>,
    /// Port of the instance's HTTP server, 1..=65535.
    pub port: Option<u32>,
    /// Health check (`httpGetUrl`, `initialDelaySeconds`, `periodSeconds`, `timeoutSeconds`,
    /// `failureThreshold`, `successThreshold`).
    #[serde(default, deserialize_with = "crate::parse::de_health_check")]
    pub health_check_config: Option<Value>,
    /// fcx / FC 2.0 extension: whether the instance runs an HTTP server.
    pub web_server_mode: Option<bool>,
}

/// `customContainerConfig` after mapping FC 2.0 spellings (`args`, `instanceID`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CustomContainerConfigInput {
    /// Image reference.
    pub image: Option<String>,
    /// Overrides the image's ENTRYPOINT.
    pub entrypoint: Option<Vec<String>>,
    /// Overrides the image's CMD.
    pub command: Option<Vec<String>>,
    /// Port of the instance's HTTP server, 1..=65535.
    pub port: Option<u32>,
    /// Health check, as for [`CustomRuntimeConfigInput::health_check_config`].
    pub health_check_config: Option<Value>,
    /// FC 2.0 extension: whether the container runs an HTTP server.
    pub web_server_mode: Option<bool>,
    /// Registry credentials and certificates.
    pub registry_config: Option<crate::RegistryConfigInput>,
    /// Image acceleration (`Default` / `None`; stored only).
    pub acceleration_type: Option<String>,
    /// ACR Enterprise Edition instance id (FC 2.0 `instanceID`; stored only).
    pub acr_instance_id: Option<String>,
    /// Resolved image digest reference.
    pub resolved_image_uri: Option<String>,
}

/// `instanceLifecycleConfig` as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceLifecycleConfigInput {
    /// Initializer hook.
    pub initializer: Option<LifecycleHookInput>,
    /// Pre-stop hook.
    pub pre_stop: Option<LifecycleHookInput>,
    /// FC 2.0 pre-freeze hook.
    pub pre_freeze: Option<LifecycleHookInput>,
}

/// One lifecycle hook as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LifecycleHookInput {
    /// Handler; an empty handler disables the hook.
    pub handler: Option<String>,
    /// Timeout in seconds, 1..=300.
    pub timeout: Option<u32>,
    /// Command run for the hook.
    pub command: Option<Vec<String>>,
}
