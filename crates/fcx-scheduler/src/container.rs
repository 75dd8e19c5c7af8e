//! Custom-container functions: the image's config merged with the function's
//! `customContainerConfig` into the instance's process, and the registry settings of
//! `registryConfig`.

use base64::Engine;
use fcx_image::{Image, RegistryOptions};
use fcx_model::{CustomContainerConfig, Function};
use fcx_runtime::{ContainerSpec, InstanceSpec};

use crate::{Deployed, SchedulerConfig};

/// Docker's PATH for images that set none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The launch description of an OCI instance of `deployed` from `image`.
pub fn instance_spec(deployed: &Deployed, image: &Image, config: &SchedulerConfig) -> InstanceSpec {
    let f = &deployed.function;
    let cc = f.custom_container_config.clone().unwrap_or_default();
    let version = deployed.version_id.as_deref().unwrap_or("LATEST");
    let port = f.port();
    // The image's environment first (its PATH, language settings), then FC's variables,
    // then the user's, each overriding what came before.
    let mut env: Vec<(String, String)> = image
        .config
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    let fc = [
        ("FC_FUNCTION_NAME", f.function_name.clone()),
        ("FC_FUNCTION_HANDLER", f.handler.clone()),
        ("FC_FUNCTION_MEMORY_SIZE", f.memory_size.to_string()),
        ("FC_FUNCTION_VERSION", version.to_owned()),
        ("FC_CUSTOM_LISTEN_PORT", port.to_string()),
        ("FC_REGION", config.region.clone()),
        ("FC_ACCOUNT_ID", config.account_id.clone()),
    ];
    for (k, v) in fc {
        set(&mut env, k, v);
    }
    for (k, v) in &f.environment_variables {
        set(&mut env, k, v.clone());
    }
    InstanceSpec {
        function_name: f.function_name.clone(),
        code_dir: image.rootfs.clone(),
        command: argv(&cc, image),
        env,
        port,
        start_timeout: config.start_timeout,
        internet_access: f.internet_access,
        snapshot: f.snapshot_enabled() && f.web_server_mode(),
        container: Some(ContainerSpec {
            rootfs: image.rootfs.clone(),
            working_dir: image.config.working_dir.clone(),
            user: image.config.user.clone(),
            memory_mb: f.memory_size,
            cpu: f.cpu,
            disk_mb: f.disk_size,
        }),
        memory_mb: f.memory_size,
        disk_mb: f.disk_size,
        run_as: None,
    }
}

fn set(env: &mut Vec<(String, String)>, key: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => env.push((key.to_owned(), value)),
    }
}

/// FC 3.0: `entrypoint` replaces the image's ENTRYPOINT and `command` its CMD. As in
/// Kubernetes (and `docker run --entrypoint`), a replaced ENTRYPOINT drops the image's CMD
/// too: it belonged to the old entrypoint.
pub fn argv(cc: &CustomContainerConfig, image: &Image) -> Vec<String> {
    let entrypoint = if cc.entrypoint.is_empty() {
        image.config.entrypoint.clone()
    } else {
        cc.entrypoint.clone()
    };
    let cmd = if !cc.command.is_empty() {
        cc.command.clone()
    } else if cc.entrypoint.is_empty() {
        image.config.cmd.clone()
    } else {
        Vec::new()
    };
    entrypoint.into_iter().chain(cmd).collect()
}

/// `registryConfig {authConfig {userName, password}, certConfig {insecure, rootCaCertBase64}}`.
pub fn registry_options(f: &Function) -> Result<RegistryOptions, String> {
    let Some(rc) = f
        .custom_container_config
        .as_ref()
        .and_then(|c| c.registry_config.as_ref())
    else {
        return Ok(RegistryOptions::default());
    };
    let mut opts = RegistryOptions::default();
    if let Some(auth) = &rc.auth_config {
        let user = auth.user_name.clone().unwrap_or_default();
        let password = auth.password.as_ref().and_then(|p| p.expose());
        if let (false, Some(password)) = (user.is_empty(), password) {
            opts.credentials = Some((user, password.to_owned()));
        }
    }
    if let Some(cert) = &rc.cert_config {
        opts.insecure = cert.insecure.unwrap_or(false);
        if let Some(b64) = cert
            .root_ca_cert_base64
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    format!("customContainerConfig.registryConfig.certConfig.rootCaCertBase64 is not base64: {e}")
                })?;
            opts.root_ca_pem = Some(pem);
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fcx_image::ImageConfig;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> Image {
        Image {
            digest: "sha256:0".into(),
            rootfs: "/r".into(),
            config: ImageConfig {
                entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                ..ImageConfig::default()
            },
        }
    }

    fn cc(entrypoint: &[&str], command: &[&str]) -> CustomContainerConfig {
        CustomContainerConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            command: command.iter().map(|s| s.to_string()).collect(),
            ..CustomContainerConfig::default()
        }
    }

    #[test]
    fn entrypoint_and_command_override_the_image() {
        let img = image(&["/entry"], &["serve", "--port=9000"]);
        assert_eq!(
            argv(&cc(&[], &[]), &img),
            ["/entry", "serve", "--port=9000"]
        );
        assert_eq!(argv(&cc(&[], &["other"]), &img), ["/entry", "other"]);
        assert_eq!(argv(&cc(&["/bin/sh"], &[]), &img), ["/bin/sh"]);
        assert_eq!(
            argv(&cc(&["/bin/sh"], &["-c", "x"]), &img),
            ["/bin/sh", "-c", "x"]
        );
        let cmd_only = image(&[], &["node", "server.js"]);
        assert_eq!(argv(&cc(&[], &[]), &cmd_only), ["node", "server.js"]);
    }
}
