//! fcx-model owns the function resource of the FC 3.0 API (version 2023-03-30): the
//! CreateFunction / UpdateFunction request bodies ([`CreateFunctionInput`],
//! [`UpdateFunctionInput`]), their parsing and validation ([`parse_create`], [`parse_update`]),
//! and the resolved, stored record that GetFunction returns ([`Function`]).
//!
//! fcx runs custom runtimes (`custom`, `custom.debian10/11/12`) and custom containers
//! (`custom-container`) only. FC 3.0 fields fcx does not implement yet (`vpcConfig`, `logConfig`,
//! `role`, ...) are accepted, kept in `extra` and returned as-is; names FC does not have are
//! rejected. FC 2.0 spellings (`initializer`, `initializationTimeout`, `caPort`,
//! `instanceLifecycleConfig.preFreeze`, `customContainerConfig.args` / `instanceID` /
//! `webServerMode`) are accepted as aliases. Numeric ranges follow the FC 3.0 SDK models.
//!
//! Base64 code is not decoded here: the control plane decodes `code.zipFile` and fills in
//! [`Function::code_size`] and [`Function::code_checksum`].

pub mod async_config;
pub mod custom_domain;
mod function;
pub mod http_trigger;
mod input;
mod parse;
mod registry;
pub mod scaling;
pub mod secret;
pub mod timer;
pub mod triggers;
mod validate;
pub mod versions;

pub use function::{
    CustomContainerConfig, CustomRuntimeConfig, Function, InstanceLifecycleConfig, LifecycleHook,
    SnapshotConfig,
};
pub use input::{
    Code, CreateFunctionInput, CustomContainerConfigInput, CustomRuntimeConfigInput,
    InstanceLifecycleConfigInput, LifecycleHookInput, SnapshotConfigInput, UpdateFunctionInput,
};
pub use parse::{
    is_create_function_field, parse_create, parse_update, CREATE_ONLY_FIELDS,
    UNIMPLEMENTED_CREATE_FIELDS,
};
pub use registry::{
    RegistryAuth, RegistryAuthInput, RegistryCert, RegistryCertInput, RegistryConfig,
    RegistryConfigInput, RegistryNetwork,
};
pub use secret::{HasSecrets, Secret, SecretCipher};
pub use validate::validate_function_name;

/// Runtimes fcx accepts (custom runtimes and custom containers).
pub const ACCEPTED_RUNTIMES: &[&str] = &[
    "custom",
    "custom.debian10",
    "custom.debian11",
    "custom.debian12",
    "custom-container",
];
/// The runtime value for custom-container functions.
pub const RUNTIME_CUSTOM_CONTAINER: &str = "custom-container";
/// Default function timeout in seconds.
pub const DEFAULT_TIMEOUT: u32 = 3;
/// Default memory size in MB.
pub const DEFAULT_MEMORY_SIZE: u32 = 512;
/// Default disk size in MB.
pub const DEFAULT_DISK_SIZE: u32 = 512;
/// Default number of concurrent requests per instance.
pub const DEFAULT_INSTANCE_CONCURRENCY: u32 = 1;
/// Default port the instance's HTTP server listens on.
pub const DEFAULT_PORT: u16 = 9000;
/// Default lifecycle hook timeout in seconds.
pub const DEFAULT_HOOK_TIMEOUT: u32 = 3;

/// Error from parsing/validating a request body. `field` is the JSON path in FC's camelCase, e.g.
/// "functionName", "customRuntimeConfig.port", "environmentVariables.FOO",
/// "instanceLifecycleConfig.initializer.timeout"; "body" when the body itself is not a JSON object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ModelError {
    /// JSON path of the offending field, FC camelCase (`body` for the whole body).
    pub field: String,
    /// Lowercase phrase, no trailing period, naming the offending value and the rule.
    pub message: String,
}

impl ModelError {
    /// Build an error for `field` with `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ModelError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Deserializes a JSON request body, naming the offending field path in the error (`body`
/// when the document itself is wrong). Shared by every body parser of this crate.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ModelError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ModelError::new(field, e.into_inner().to_string())
    })
}
