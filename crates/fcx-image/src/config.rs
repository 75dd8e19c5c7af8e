//! Reading image config JSON (OCI and Docker share the shape) into [`ImageConfig`], and
//! checking that it is a linux/amd64 image.

use crate::{ImageConfig, ImageError};
use serde::Deserialize;

#[derive(Deserialize, Default)]
struct ConfigDoc {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<ProcessConfig>,
    #[serde(default)]
    rootfs: Option<RootfsDoc>,
}

// Docker writes `null` for absent lists, hence Option everywhere.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ProcessConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize, Default)]
struct RootfsDoc {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// A parsed config: what the process needs plus the layer diff ids.
pub(crate) struct Parsed {
    pub config: ImageConfig,
    pub diff_ids: Vec<String>,
}

/// Parses a config blob; a platform other than linux/amd64 is `UnsupportedPlatform`.
pub(crate) fn parse(reference: &str, bytes: &[u8]) -> Result<Parsed, ImageError> {
    let doc: ConfigDoc = serde_json::from_slice(bytes).map_err(|e| ImageError::Invalid {
        reference: reference.to_string(),
        detail: format!("image config is not valid JSON: {e}"),
    })?;
    let os = if doc.os.is_empty() { "linux" } else { &doc.os };
    let arch = if doc.architecture.is_empty() {
        "amd64"
    } else {
        &doc.architecture
    };
    if os != "linux" || arch != "amd64" {
        let offered = match &doc.variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        };
        return Err(ImageError::UnsupportedPlatform {
            reference: reference.to_string(),
            offered,
        });
    }
    let p = doc.config.unwrap_or_default();
    Ok(Parsed {
        config: ImageConfig {
            entrypoint: p.entrypoint.unwrap_or_default(),
            cmd: p.cmd.unwrap_or_default(),
            env: p.env.unwrap_or_default(),
            working_dir: p.working_dir.unwrap_or_default(),
            user: p.user.unwrap_or_default(),
            platform: format!("{os}/{arch}"),
        },
        diff_ids: doc.rootfs.unwrap_or_default().diff_ids,
    })
}

/// Checks a digest is `sha256:` + 64 lowercase hex (it becomes a file name, so nothing
/// else may pass) and returns the hex.
pub(crate) fn digest_hex<'a>(reference: &str, digest: &'a str) -> Result<&'a str, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(h)
        }
        _ => Err(ImageError::Invalid {
            reference: reference.to_string(),
            detail: format!("unsupported digest {digest:?} (fcx takes sha256 digests)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_nulls_and_platform() {
        let p = parse("r", br#"{"architecture":"amd64","os":"linux","config":{"Cmd":null,"Env":["A=1"],"Entrypoint":null}}"#).unwrap();
        assert_eq!(p.config.env, vec!["A=1"]);
        assert!(p.config.cmd.is_empty());
        assert_eq!(p.config.platform, "linux/amd64");
        let e = parse(
            "r",
            br#"{"architecture":"arm64","os":"linux","variant":"v8"}"#,
        )
        .err()
        .unwrap();
        assert!(
            matches!(e, ImageError::UnsupportedPlatform { ref offered, .. } if offered == "linux/arm64/v8")
        );
    }

    #[test]
    fn digest_must_be_sha256_hex() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(digest_hex("r", &good).is_ok());
        assert!(digest_hex("r", "sha256:../../etc").is_err());
        assert!(digest_hex("r", &format!("sha512:{}", "a".repeat(128))).is_err());
    }
}
