//! Code packages as files, named by the SHA-256 of their bytes (`<dir>/<sha256>.zip`), so
//! identical uploads are stored once and a name always means the same bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::StoreError;

/// A stored package.
#[derive(Debug, Clone)]
pub struct StoredCode {
    /// SHA-256 (hex): the file's name.
    pub checksum: String,
    /// CRC-64/XZ (decimal), what FC reports as `codeChecksum`.
    pub crc64: String,
    /// Bytes in the package.
    pub size: u64,
    /// Where the package is stored.
    pub path: PathBuf,
}

/// The code-package directory (`<data>/code`).
pub struct CodeStore {
    dir: PathBuf,
}

impl CodeStore {
    /// Opens (and creates) the directory `dir`.
    pub fn open(dir: &Path) -> Result<CodeStore, StoreError> {
        std::fs::create_dir_all(dir)?;
        Ok(CodeStore {
            dir: dir.to_owned(),
        })
    }

    /// The file of package `checksum`.
    pub fn path(&self, checksum: &str) -> PathBuf {
        self.dir.join(format!("{checksum}.zip"))
    }

    /// Stores `bytes` durably (written to a temporary file, synced, renamed into place).
    pub fn put(&self, bytes: &[u8]) -> Result<StoredCode, StoreError> {
        let checksum = hex(&Sha256::digest(bytes));
        let path = self.path(&checksum);
        if !path.exists() {
            // Unique per call: two uploads of the same package may race.
            let tmp = self.dir.join(format!(
                ".tmp-{checksum}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(StoredCode {
            crc64: crc64(bytes).to_string(),
            checksum,
            size: bytes.len() as u64,
            path,
        })
    }
}

/// CRC-64/XZ (ECMA-182 polynomial, reflected, all-ones init and xorout): the CRC-64 that OSS
/// and FC report for objects and code packages.
pub fn crc64(bytes: &[u8]) -> u64 {
    crc::Crc::<u64>::new(&crc::CRC_64_XZ).checksum(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_the_xz_variant() {
        // The CRC catalogue's check value for CRC-64/XZ.
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
    }

    #[test]
    fn same_bytes_same_file() {
        let dir = std::env::temp_dir().join(format!("fcx-code-test-{}", std::process::id()));
        let store = CodeStore::open(&dir).unwrap();
        let a = store.put(b"abc").unwrap();
        let b = store.put(b"abc").unwrap();
        assert_eq!(a.path, b.path);
        assert_eq!(
            a.checksum,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(std::fs::read(&a.path).unwrap(), b"abc");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
