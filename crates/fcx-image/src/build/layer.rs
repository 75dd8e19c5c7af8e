//! One layer of a built image: an ordered list of tar entries (files, dirs, links,
//! whiteouts, or verbatim headers) rendered to a deterministic uncompressed tar.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

#[derive(Debug, Clone)]
enum Entry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    Raw {
        header: Box<tar::Header>,
        data: Vec<u8>,
    },
}

/// An ordered set of filesystem changes. Missing parent directories of added entries are
/// emitted (0755, before the entry) when the tar is rendered.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    entries: Vec<Entry>,
}

/// Relative tar path: no leading `/`, no trailing `/`.
fn rel(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Layer::default()
    }

    /// A regular file owned by root with `mode` (permission bits, setuid etc. included).
    pub fn file(self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.file_owned(path, contents, mode, 0, 0)
    }

    /// A regular file with an explicit owner.
    pub fn file_owned(
        mut self,
        path: &str,
        contents: impl Into<Vec<u8>>,
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Self {
        self.entries.push(Entry::File {
            path: rel(path),
            data: contents.into(),
            mode,
            uid,
            gid,
        });
        self
    }

    /// Content and mode of a host file (symlinks followed).
    pub fn host_file(self, path: &str, host: &Path) -> std::io::Result<Self> {
        let data = std::fs::read(host)?;
        let mode = std::fs::metadata(host)?.permissions().mode() & 0o7777;
        Ok(self.file(path, data, mode))
    }

    /// Recursive copy of a host directory (entries sorted by name; symlinks kept as
    /// symlinks; modes kept; owners set to root).
    pub fn host_dir(self, path: &str, host: &Path) -> std::io::Result<Self> {
        let mode = std::fs::metadata(host)?.mode() & 0o7777;
        let mut layer = self.dir(path, mode);
        let mut stack = vec![(rel(path), host.to_path_buf())];
        while let Some((dst, src)) = stack.pop() {
            let mut names: Vec<_> = std::fs::read_dir(&src)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()?;
            names.sort();
            let mut subdirs = Vec::new();
            for name in names {
                let Some(name_str) = name.to_str() else {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("non-UTF-8 file name in {}", src.display()),
                    ));
                };
                let host_path = src.join(&name);
                let dst_path = join(&dst, name_str);
                let meta = std::fs::symlink_metadata(&host_path)?;
                let ft = meta.file_type();
                if ft.is_symlink() {
                    let target = std::fs::read_link(&host_path)?;
                    layer = layer.symlink(&dst_path, &target.to_string_lossy());
                } else if ft.is_dir() {
                    layer = layer.dir(&dst_path, meta.mode() & 0o7777);
                    subdirs.push((dst_path, host_path));
                } else if ft.is_file() {
                    let data = std::fs::read(&host_path)?;
                    layer = layer.file(&dst_path, data, meta.mode() & 0o7777);
                }
                // Sockets, fifos and devices are not image content.
            }
            // Reverse so the stack pops subdirectories in sorted order.
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(layer)
    }

    /// A directory with permission bits `mode`.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::Dir {
            path: rel(path),
            mode,
        });
        self
    }

    /// A symbolic link at `path` pointing to `target` (stored as given).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink {
            path: rel(path),
            target: target.to_string(),
        });
        self
    }

    /// A hardlink to `target`, an image path written earlier (in this or a lower layer).
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Hardlink {
            path: rel(path),
            target: target.to_string(),
        });
        self
    }

    /// Deletes `path` of lower layers (`<parent>/.wh.<name>`).
    pub fn whiteout(self, path: &str) -> Self {
        let p = rel(path);
        let (parent, name) = match p.rfind('/') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => ("", p.as_str()),
        };
        let wh = join(parent, &format!(".wh.{name}"));
        self.file(&wh, Vec::new(), 0o644)
    }

    /// Hides everything lower layers put in `dir` (`<dir>/.wh..wh..opq`).
    pub fn opaque(self, dir: &str) -> Self {
        let wh = join(&rel(dir), ".wh..wh..opq");
        self.file(&wh, Vec::new(), 0o644)
    }

    /// A verbatim entry: the header is written as given (any path bytes, any type).
    pub fn raw(mut self, header: tar::Header, data: Vec<u8>) -> Self {
        self.entries.push(Entry::Raw {
            header: Box::new(header),
            data,
        });
        self
    }

    /// Renders the uncompressed tar.
    pub(crate) fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut dirs: BTreeSet<String> = BTreeSet::new();
        for e in &self.entries {
            let path = match e {
                Entry::File { path, .. }
                | Entry::Dir { path, .. }
                | Entry::Symlink { path, .. }
                | Entry::Hardlink { path, .. } => path,
                Entry::Raw { header, data } => {
                    tar.append(header, &data[..])?;
                    continue;
                }
            };
            // Parents first, so extractors that need them (and humans) see a natural tree.
            let mut parent = String::new();
            for comp in path
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .map(|x| x.1)
                .unwrap_or(&[])
            {
                parent = join(&parent, comp);
                if dirs.insert(parent.clone()) {
                    let mut h = header(tar::EntryType::Directory, 0o755, 0, 0, 0);
                    tar.append_data(&mut h, format!("{parent}/"), std::io::empty())?;
                }
            }
            match e {
                Entry::File {
                    data,
                    mode,
                    uid,
                    gid,
                    ..
                } => {
                    let mut h = header(
                        tar::EntryType::Regular,
                        *mode,
                        data.len() as u64,
                        *uid,
                        *gid,
                    );
                    tar.append_data(&mut h, path, &data[..])?;
                }
                Entry::Dir { mode, .. } => {
                    dirs.insert(path.clone());
                    let mut h = header(tar::EntryType::Directory, *mode, 0, 0, 0);
                    tar.append_data(&mut h, format!("{path}/"), std::io::empty())?;
                }
                Entry::Symlink { target, .. } => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
                    tar.append_link(&mut h, path, target)?;
                }
                Entry::Hardlink { target, .. } => {
                    let mut h = header(tar::EntryType::Link, 0o644, 0, 0, 0);
                    tar.append_link(&mut h, path, rel(target))?;
                }
                Entry::Raw { .. } => {}
            }
        }
        tar.into_inner()
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64, uid: u64, gid: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(uid);
    h.set_gid(gid);
    // Fixed mtime: the same files always give the same digest.
    h.set_mtime(0);
    h
}
