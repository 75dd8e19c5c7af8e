//! Code packages: `code.zipFile` decoded, checked and stored as `<data>/code/<sha256>.zip`,
//! recorded on the function, and found again when the function is deployed. With a shared
//! store the bytes are also kept in the database, and a node that lacks a package's file
//! (another node took the upload) writes it from there before deploying.

use base64::Engine;
use fcx_model::{Code, Function};
use fcx_store::{CodeStore, Store, StoredCode};

use crate::ControlError;

/// Decodes, checks and stores `code.zipFile` when the body has one.
pub(crate) fn store(
    code: &CodeStore,
    store: &dyn Store,
    input: Option<&Code>,
) -> Result<Option<StoredCode>, ControlError> {
    let Some(zip_base64) = input.and_then(|c| c.zip_file.as_deref()) else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(zip_base64.trim())
        .map_err(|e| ControlError::invalid("code.zipFile", format!("not valid base64: {e}")))?;
    fcx_runtime::code::validate_zip(&bytes)
        .map_err(|e| ControlError::invalid("code.zipFile", e))?;
    let stored = code.put(&bytes)?;
    store.put_code(&stored.checksum, &bytes)?;
    Ok(Some(stored))
}

/// Records a stored package on the function: FC's CRC-64, fcx's SHA-256 name, the size.
pub(crate) fn record(f: &mut Function, stored: StoredCode) {
    f.code_checksum = stored.crc64;
    f.code_sha256 = stored.checksum;
    f.code_size = stored.size;
}

/// The stored package of `function` (`None` for image-based functions). Records written
/// before `codeSha256` existed kept the SHA-256 in `codeChecksum`; they are read as such.
pub(crate) fn zip_of(
    code: &CodeStore,
    store: &dyn Store,
    function: &mut Function,
) -> Option<std::path::PathBuf> {
    if function.code_sha256.is_empty() && function.code_checksum.len() == 64 {
        function.code_sha256 = function.code_checksum.clone();
    }
    if function.code_sha256.is_empty() || function.is_custom_container() {
        return None;
    }
    let path = code.path(&function.code_sha256);
    if !path.exists() {
        fetch(code, store, &function.code_sha256);
    }
    Some(path)
}

/// Writes package `sha256` from the shared store to this node's files. A package missing
/// there too fails the cold start with the missing file named, as on a single node.
fn fetch(code: &CodeStore, store: &dyn Store, sha256: &str) {
    match store.get_code(sha256) {
        Ok(Some(bytes)) => match code.put(&bytes) {
            Ok(stored) if stored.checksum == sha256 => {}
            Ok(stored) => tracing::error!(
                expected = sha256,
                got = %stored.checksum,
                "the store's copy of a code package has other bytes"
            ),
            Err(e) => tracing::error!(sha256, error = %e, "cannot write a code package"),
        },
        Ok(None) => {}
        Err(e) => tracing::error!(sha256, error = %e, "cannot read a code package from the store"),
    }
}
