//! Secrets at rest: ChaCha20-Poly1305 with the data dir's own key, `<data dir>/secret.key`
//! (32 random bytes, mode 0600, created on first use). Each sealed value is bound to what it
//! belongs to (associated data: an AccessKey id, a custom domain's name), so a value copied
//! onto another row does not decrypt. Used for AccessKey secrets, custom domains' private
//! keys and the secret fields of function records (`fcx_model::Secret`, as base64 text).

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};

use crate::StoreError;

/// Name of the data-dir key file.
pub const SECRET_KEY_FILE: &str = "secret.key";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// First byte of every sealed value: the encryption format, so it can change later.
const FORMAT_V1: u8 = 1;

/// The data dir's cipher.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    key_file: PathBuf,
}

impl Sealer {
    /// The cipher of `data_dir`, creating its key file when there is none.
    pub fn open(data_dir: &Path) -> Result<Sealer, StoreError> {
        let key_file = data_dir.join(SECRET_KEY_FILE);
        let key = load_or_create_key(&key_file)?;
        let cipher = ChaCha20Poly1305::new_from_slice(&key)
            .map_err(|_| StoreError::Corrupt("secret.key has the wrong length".into()))?;
        Ok(Sealer { cipher, key_file })
    }

    /// `FORMAT_V1 || nonce || ciphertext+tag`, bound to `owner`.
    pub fn seal(&self, owner: &[u8], plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                chacha20poly1305::aead::Payload {
                    msg: plain,
                    aad: owner,
                },
            )
            .map_err(|_| StoreError::Corrupt("encrypting a secret failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain value sealed for `owner`; `what` names it when it cannot be decrypted.
    pub fn unseal(&self, owner: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>, StoreError> {
        let undecryptable = || {
            StoreError::Corrupt(format!(
                "{what} cannot be decrypted with {} (was the key file replaced?)",
                self.key_file.display()
            ))
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
                    aad: owner,
                },
            )
            .map_err(|_| undecryptable())
    }
}

/// A 32-byte key for `purpose`, derived from `<data_dir>/secret.key` (created when there is
/// none): SHA-256 of the purpose, a zero byte and the key, so every node holding that file
/// derives the same key and the sealing key itself is never used for anything else (nodes
/// authenticate their requests to each other with `fcx nodes v1`).
pub fn derived_key(data_dir: &Path, purpose: &str) -> Result<[u8; 32], StoreError> {
    use sha2::{Digest, Sha256};
    let key = load_or_create_key(&data_dir.join(SECRET_KEY_FILE))?;
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update([0u8]);
    h.update(key);
    Ok(h.finalize().into())
}

/// What a custom domain's private key is bound to (the same in every store).
pub(crate) fn domain_owner(name: &str) -> Vec<u8> {
    format!("custom-domain:{name}").into_bytes()
}

/// Secret fields of records (`fcx_model::Secret`), sealed as base64 text bound to `context`
/// (the record's name).
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
        let plain = self
            .unseal(context.as_bytes(), &bytes, "the secret")
            .map_err(|e| e.to_string())?;
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

pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), StoreError> {
    getrandom::fill(buf).map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sealer::open(dir.path()).unwrap();
        let sealed = s.seal(b"domain:a.example", b"-----BEGIN KEY-----").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"BEGIN"));
        assert_eq!(
            s.unseal(b"domain:a.example", &sealed, "k").unwrap(),
            b"-----BEGIN KEY-----"
        );
        let e = s
            .unseal(b"domain:b.example", &sealed, "the key of b")
            .unwrap_err();
        assert!(
            e.to_string().contains("the key of b cannot be decrypted"),
            "{e}"
        );
        // The same key file opens it again (a restart).
        let again = Sealer::open(dir.path()).unwrap();
        assert!(again.unseal(b"domain:a.example", &sealed, "k").is_ok());
    }
}
