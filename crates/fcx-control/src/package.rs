//! Code packages: `code.zipFile` decoded, checked and stored as `<data>/code/<sha256>.zip`,
//! recorded on the function, and found again when the function is deployed.

use base64::Engine;
use fcx_model::{Code, Function};
use fcx_store::{CodeStore, StoredCode};

use crate::ControlError;

/// Decodes, checks and stores `code.zipFile` when the body has one.
pub(crate) fn store(
    code: &CodeStore,
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
    Ok(Some(code.put(&bytes)?))
}

/// Records a stored package on the function: FC's CRC-64, fcx's SHA-256 name, the size.
pub(crate) fn record(f: &mut Function, stored: StoredCode) {
    f.code_checksum = stored.crc64;
    f.code_sha256 = stored.checksum;
    f.code_size = stored.size;
}

/// The stored package of `function` (`None` for image-based functions). Records written
/// before `codeSha256` existed kept the SHA-256 in `codeChecksum`; they are read as such.
pub(crate) fn zip_of(code: &CodeStore, function: &mut Function) -> Option<std::path::PathBuf> {
    if function.code_sha256.is_empty() && function.code_checksum.len() == 64 {
        function.code_sha256 = function.code_checksum.clone();
    }
    (!function.code_sha256.is_empty() && !function.is_custom_container())
        .then(|| code.path(&function.code_sha256))
}
