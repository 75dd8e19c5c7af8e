//! Resolves an image's `User` (`name`, `uid`, `name:group`, `uid:gid`) against the image's
//! own `/etc/passwd` and `/etc/group`, as Docker does; empty means root.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A resolved process identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Resolves `spec` inside `rootfs`. Numeric ids need no database entry.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<User, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Ok(User {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
        });
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_image_file(rootfs, "etc/passwd");
    let groups = read_image_file(rootfs, "etc/group");
    let entry = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && (f[0] == user || f[2] == user)).then(|| (f[0].to_owned(), f[2], f[3]))
    });
    let (name, uid, primary_gid) = match (user.parse::<u32>(), entry) {
        (_, Some((name, uid, gid))) => (
            Some(name),
            uid.parse()
                .map_err(|_| format!("bad uid for {user} in /etc/passwd"))?,
            gid.parse().unwrap_or(0),
        ),
        (Ok(uid), None) => (None, uid, 0),
        (Err(_), None) => {
            return Err(format!(
                "the image's USER '{user}' is not in the image's /etc/passwd: \
                 use a numeric uid or add the user to the image"
            ))
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_id(&groups, g).ok_or_else(|| {
                format!("the image's USER group '{g}' is not in the image's /etc/group")
            })?,
        },
    };
    let additional_gids = match (&name, group) {
        (Some(name), None) => member_of(&groups, name),
        _ => Vec::new(),
    };
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

fn group_id(groups: &str, name: &str) -> Option<u32> {
    groups.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
    })
}

fn member_of(groups: &str, user: &str) -> Vec<u32> {
    groups
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == user) {
                f[2].parse().ok()
            } else {
                None
            }
        })
        .collect()
}

/// Reads a small file of the image without following a symlink at its last component: an
/// image's `/etc/passwd -> /etc/shadow` must not read the host's file.
fn read_image_file(rootfs: &Path, rel: &str) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(rootfs.join(rel))
    {
        let _ = f.by_ref().take(1 << 20).read_to_string(&mut text);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nweb:x:33:app\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn resolves_names_ids_and_groups() {
        let d = rootfs();
        let r = |s| resolve(d.path(), s);
        assert_eq!(r("").unwrap().uid, 0);
        let app = r("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.additional_gids),
            (1000, 1000, vec![33])
        );
        assert_eq!(r("1000:web").unwrap().gid, 33);
        let n = r("4242").unwrap();
        assert_eq!((n.uid, n.gid), (4242, 0));
        assert_eq!(r("5:6").unwrap().gid, 6);
        assert!(r("ghost")
            .unwrap_err()
            .contains("not in the image's /etc/passwd"));
        assert!(r("app:nogroup").is_err());
    }
}
