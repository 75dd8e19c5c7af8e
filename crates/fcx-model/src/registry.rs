//! `customContainerConfig.registryConfig`: registry credentials, certificates and network,
//! typed (a password given as an array is refused, naming the field), with the password a
//! [`Secret`]: redacted in answers, sealed in the store.

use serde::{Deserialize, Deserializer, Serialize};

use crate::secret::{HasSecrets, Secret};
use crate::ModelError;

/// `registryConfig` as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryConfigInput {
    /// Account that may pull the image.
    pub auth_config: Option<RegistryAuthInput>,
    /// TLS settings for the registry.
    pub cert_config: Option<RegistryCertInput>,
    /// VPC access to the registry (stored only).
    pub network_config: Option<RegistryNetwork>,
}

/// `registryConfig.authConfig` as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryAuthInput {
    /// The registry user.
    pub user_name: Option<String>,
    /// The password; [`crate::secret::REDACTED`] (as answers show it) keeps the stored one.
    pub password: Option<Secret>,
}

/// `registryConfig.certConfig` as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryCertInput {
    /// Accept any certificate (self-signed, expired).
    pub insecure: Option<bool>,
    /// A PEM root certificate to trust, base64.
    pub root_ca_cert_base64: Option<String>,
}

/// The stored `registryConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RegistryConfig {
    /// How to log in to the registry.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub auth_config: Option<RegistryAuth>,
    /// TLS settings for the registry.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub cert_config: Option<RegistryCert>,
    /// VPC access to the registry (stored only).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub network_config: Option<RegistryNetwork>,
}

/// The stored `registryConfig.authConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RegistryAuth {
    /// The registry user.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub user_name: Option<String>,
    /// The password, sealed at rest and never shown.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub password: Option<Secret>,
}

/// The stored `registryConfig.certConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RegistryCert {
    /// Accept any certificate (self-signed, expired).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub insecure: Option<bool>,
    /// A PEM root certificate to trust, base64.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub root_ca_cert_base64: Option<String>,
}

/// `registryConfig.networkConfig` (stored only).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryNetwork {
    /// The VPC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// The security group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_group_id: Option<String>,
    /// The vSwitch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v_switch_id: Option<String>,
}

/// A stored field of the wrong type (written before fields were type-checked) reads as
/// absent, as fcx treated it then, rather than making the whole function unreadable.
fn lenient<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

pub(crate) const PASSWORD_PATH: &str = "customContainerConfig.registryConfig.authConfig.password";

impl RegistryConfigInput {
    /// Rules beyond the types: a password is plain text (never a stored envelope).
    pub(crate) fn check(&self) -> Result<(), ModelError> {
        if let Some(p) = self.auth_config.as_ref().and_then(|a| a.password.as_ref()) {
            if p.expose().is_none() {
                return Err(ModelError::new(
                    PASSWORD_PATH,
                    "must be the password itself, not a sealed value",
                ));
            }
        }
        Ok(())
    }
}

impl RegistryConfig {
    /// This config replaced by `input`, as updates replace `registryConfig`; a password sent
    /// as the redaction placeholder keeps the current one.
    pub(crate) fn replaced_by(
        current: Option<&RegistryConfig>,
        input: &RegistryConfigInput,
    ) -> RegistryConfig {
        let kept = current
            .and_then(|c| c.auth_config.as_ref())
            .and_then(|a| a.password.clone());
        RegistryConfig {
            auth_config: input.auth_config.as_ref().map(|a| RegistryAuth {
                user_name: a.user_name.clone(),
                password: match &a.password {
                    Some(p) if p.is_placeholder() => kept.clone(),
                    other => other.clone(),
                },
            }),
            cert_config: input.cert_config.as_ref().map(|c| RegistryCert {
                insecure: c.insecure,
                root_ca_cert_base64: c.root_ca_cert_base64.clone(),
            }),
            network_config: input.network_config.clone(),
        }
    }
}

impl HasSecrets for crate::Function {
    fn secrets_mut(&mut self) -> Vec<(&'static str, &mut Secret)> {
        let password = self
            .custom_container_config
            .as_mut()
            .and_then(|c| c.registry_config.as_mut())
            .and_then(|r| r.auth_config.as_mut())
            .and_then(|a| a.password.as_mut());
        password.map(|p| (PASSWORD_PATH, p)).into_iter().collect()
    }
}
