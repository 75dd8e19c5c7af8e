//! The data dir's own key, `<data dir>/secret.key` (32 random bytes, mode 0600, created on
//! first use), and sealing with it (ChaCha20-Poly1305, `FORMAT_V1 || nonce || ciphertext+tag`,
//! bound to associated data that names what is sealed). AccessKey secrets and the secret
//! fields of stored records (registry passwords, ...) are sealed with it.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};

use crate::keys::fill_random;
use crate::StoreError;

/// Name of the data-dir key file.
pub const SECRET_KEY_FILE: &str = "secret.key";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// First byte of every sealed value: the encryption format, so it can change later.
const FORMAT_V1: u8 = 1;

/// Seals and opens values with the data dir's key.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    key_file: PathBuf,
}

impl Sealer {
    /// The key of `data_dir` (which must exist), created if missing.
    pub fn open(data_dir: &Path) -> Result<Sealer, StoreError> {
        let key_file = data_dir.join(SECRET_KEY_FILE);
        let key = load_or_create_key(&key_file)?;
        let cipher = ChaCha20Poly1305::new_from_slice(&key)
            .map_err(|_| StoreError::Corrupt("secret.key has the wrong length".into()))?;
        Ok(Sealer { cipher, key_file })
    }

    /// `FORMAT_V1 || nonce || ciphertext+tag`, with `aad` as associated data so a value
    /// copied onto another record or field does not open.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                chacha20poly1305::aead::Payload { msg: plain, aad },
            )
            .map_err(|_| StoreError::Corrupt("encrypting a secret failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain value of `sealed`; the error says why it does not open.
    pub fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
        let undecryptable = || {
            format!(
                "cannot be decrypted with {} (was the key file replaced?)",
                self.key_file.display()
            )
        };
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT_V1 {
            return Err(undecryptable());
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                chacha20poly1305::aead::Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad,
                },
            )
            .map_err(|_| undecryptable())
    }
}

/// Secret fields of records (`fcx_model::Secret`), sealed as base64 text.
impl fcx_model::SecretCipher for Sealer {
    fn seal(&self, context: &str, plain: &str) -> Result<String, String> {
        let sealed =
            Sealer::seal(self, context.as_bytes(), plain.as_bytes()).map_err(|e| e.to_string())?;
        Ok(base64::engine::general_purpose::STANDARD_NO_PAD.encode(sealed))
    }

    fn open(&self, context: &str, sealed: &str) -> Result<String, String> {
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(sealed)
            .map_err(|_| "the sealed value is not base64".to_string())?;
        let plain = self.unseal(context.as_bytes(), &bytes)?;
        String::from_utf8(plain).map_err(|_| "the secret is not UTF-8".to_string())
    }
}

/// Reads the data-dir key, or creates it (exclusively, mode 0600) when it does not exist.
fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN], StoreError> {
    let mut key = [0u8; KEY_LEN];
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            fill_random(&mut key)?;
            file.write_all(&key)?;
            file.sync_all()?;
            return Ok(key);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "the data-dir key was readable by others; made it 0600");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let mut bytes = Vec::with_capacity(KEY_LEN);
    file.read_to_end(&mut bytes)?;
    if bytes.len() != KEY_LEN {
        return Err(StoreError::Corrupt(format!(
            "{} must hold exactly {KEY_LEN} bytes, it holds {}",
            path.display(),
            bytes.len()
        )));
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}
