//! Builds code packages (zip, base64) from files and directories, keeping unix modes and
//! symlinks, as `zip -ry` would.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use zip::write::SimpleFileOptions;

/// The test function binary packed as `bootstrap`, base64 (built once per test process).
pub fn testfn_zip_base64() -> String {
    static ZIP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ZIP.get_or_init(|| {
        let bin = std::fs::read(super::testfn_bin()).expect("read fcx-testfn");
        base64(&zip_files(&[("bootstrap", &bin, 0o755)]))
    })
    .clone()
}

/// The test function binary packed as `bootstrap`.
pub fn testfn_zip() -> Vec<u8> {
    zip_files(&[("bootstrap", &testfn_bootstrap(), 0o755)])
}

/// The test function binary itself.
pub fn testfn_bootstrap() -> Vec<u8> {
    std::fs::read(super::testfn_bin()).expect("read fcx-testfn")
}

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A zip of (name, content, mode) entries.
pub fn zip_files(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content, mode) in files {
        let opts = SimpleFileOptions::default().unix_permissions(*mode);
        w.start_file(*name, opts).unwrap();
        w.write_all(content).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A zip of everything under `dir`, paths relative to it.
pub fn zip_dir(dir: &Path) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    add_dir(&mut w, dir, dir);
    w.finish().unwrap().into_inner()
}

fn add_dir(w: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>, root: &Path, dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let opts = SimpleFileOptions::default().unix_permissions(mode);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            w.add_symlink(rel, target.to_string_lossy(), opts).unwrap();
        } else if meta.is_dir() {
            w.add_directory(format!("{rel}/"), opts).unwrap();
            add_dir(w, root, &path);
        } else {
            w.start_file(rel, opts).unwrap();
            w.write_all(&std::fs::read(&path).unwrap()).unwrap();
        }
    }
}

/// A hand-made zip of one deflated entry `name` that decompresses to about `actual` zero
/// bytes while its headers declare `declared` (a zip bomb when `declared` is small): a
/// fixed-Huffman deflate stream of one literal and length-258 copies (13 bits per 258
/// bytes), so building a 1 GiB bomb takes a few MB and no compression work.
pub fn zip_bomb(name: &str, actual: u64, declared: u32) -> Vec<u8> {
    let data = zeros_deflated(actual);
    let mut local = Vec::new();
    let put16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let put32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    put32(&mut local, 0x0403_4b50);
    put16(&mut local, 20);
    put16(&mut local, 0);
    put16(&mut local, 8);
    put32(&mut local, 0); // time, date
    put32(&mut local, 0); // crc (never reached: reading stops at fcx's limit)
    put32(&mut local, data.len() as u32);
    put32(&mut local, declared);
    put16(&mut local, name.len() as u16);
    put16(&mut local, 0);
    local.extend_from_slice(name.as_bytes());
    local.extend_from_slice(&data);
    let cd_offset = local.len() as u32;
    let mut cd = Vec::new();
    put32(&mut cd, 0x0201_4b50);
    put16(&mut cd, 0x031e);
    put16(&mut cd, 20);
    put16(&mut cd, 0);
    put16(&mut cd, 8);
    put32(&mut cd, 0);
    put32(&mut cd, 0);
    put32(&mut cd, data.len() as u32);
    put32(&mut cd, declared);
    put16(&mut cd, name.len() as u16);
    put16(&mut cd, 0);
    put16(&mut cd, 0);
    put16(&mut cd, 0);
    put16(&mut cd, 0);
    put32(&mut cd, 0o100644 << 16);
    put32(&mut cd, 0);
    cd.extend_from_slice(name.as_bytes());
    let mut out = local;
    let cd_len = cd.len() as u32;
    out.extend_from_slice(&cd);
    put32(&mut out, 0x0605_4b50);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, 1);
    put16(&mut out, 1);
    put32(&mut out, cd_len);
    put32(&mut out, cd_offset);
    put16(&mut out, 0);
    out
}

fn zeros_deflated(len: u64) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u64, bits: u32) {
            self.acc |= value << self.n;
            self.n += bits;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u32, bits: u32) {
            let reversed = (code.reverse_bits() >> (32 - bits)) as u64;
            self.put(reversed, bits);
        }
    }
    let mut b = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    b.put(1, 1); // BFINAL
    b.put(1, 2); // BTYPE 01: fixed Huffman codes
    b.code(0x30, 8); // literal 0
    for _ in 0..len.saturating_sub(1) / 258 {
        b.code(0b1100_0101, 8); // length code 285: 258 bytes
        b.code(0, 5); // distance code 0: distance 1
    }
    b.code(0, 7); // end of block
    b.put(0, 7);
    b.out
}

/// A zip of `files` plus `links` (name, target) symlink entries.
pub fn zip_with_links(files: &[(&str, &[u8], u32)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content, mode) in files {
        let opts = SimpleFileOptions::default().unix_permissions(*mode);
        w.start_file(*name, opts).unwrap();
        w.write_all(content).unwrap();
    }
    for (name, target) in links {
        w.add_symlink(*name, *target, SimpleFileOptions::default())
            .unwrap();
    }
    w.finish().unwrap().into_inner()
}
