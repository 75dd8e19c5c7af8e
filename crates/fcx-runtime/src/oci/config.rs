//! The `config.json` of an instance's OCI bundle: the process (argv, env, cwd, user) the
//! scheduler resolved, the namespaces (the instance's own network namespace by path), the
//! resource limits, the security profile, and the mounts of an FC instance.

use std::path::Path;

use serde_json::{json, Value};

use super::profile;

/// Everything `config.json` is made of.
#[derive(Debug, Clone)]
pub struct BundleConfig<'a> {
    pub args: &'a [String],
    /// `KEY=VALUE` entries.
    pub env: &'a [String],
    pub cwd: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: &'a [u32],
    pub hostname: &'a str,
    /// Path of the instance's network namespace, made by fcx.
    pub netns: &'a Path,
    /// Cgroup path relative to every hierarchy's root.
    pub cgroups_path: &'a str,
    /// A cgroup namespace of its own, so `/sys/fs/cgroup` shows the container's group only.
    /// On a pure cgroup v2 host the runtime mounts cgroup2 as the container's namespace sees
    /// it: without one, that is the host's whole tree (every group, limits nowhere in
    /// reach). Docker makes the same choice (private on v2, the host's on v1, where the
    /// runtime bind-mounts the container's own groups).
    pub cgroup_namespace: bool,
    /// Memory limit in MB; `None` when fcx enforces it on the parent group.
    pub memory_mb: Option<u32>,
    /// vCPUs (CPU quota); `None`: unlimited.
    pub cpu: Option<f64>,
    pub pids_limit: i64,
    /// Size of the `/tmp` tmpfs in MB (FC's `diskSize`).
    pub tmp_mb: u32,
    /// Host files bind-mounted read-only at `/etc/resolv.conf` and `/etc/hosts`.
    pub resolv_conf: &'a Path,
    pub hosts: &'a Path,
    /// A pre-created sandbox's gate: a hook that blocks the container's start until fcx
    /// opens and closes the fifo.
    pub gate: Option<Gate<'a>>,
    /// Snapshot-enabled instances: the host file bind-mounted read-only at
    /// [`crate::snapshot::CONTAINER_IDENTITY_PATH`]; they also do without the
    /// `/sys/fs/cgroup` mount, which CRIU cannot restore into a fresh group.
    pub identity: Option<&'a Path>,
}

/// How a pre-created sandbox is held before the function's process starts.
#[derive(Debug, Clone, Copy)]
pub enum Gate<'a> {
    /// A `startContainer` hook: the runtime runs it inside the container after
    /// `pivot_root` (so the old root's detach, which can wait for an RCU grace period, is
    /// paid at prepare time), just before the function's process. A static busybox,
    /// bind-mounted read-only at [`GATE_BINARY`], reads the fifo bind-mounted at
    /// [`GATE_FIFO`] (both under the container's own `/dev` tmpfs: nothing lands in the
    /// writable layer).
    InContainer { busybox: &'a Path, fifo: &'a Path },
    /// A `createContainer` hook (`cat <fifo>`, the host's binary), run before `pivot_root`:
    /// the fallback where no static busybox is installed.
    Host { cat: &'a Path, fifo: &'a Path },
}

/// Where the in-container gate's busybox and fifo appear inside the container.
pub const GATE_BINARY: &str = "/dev/.fcx-gate";
pub const GATE_FIFO: &str = "/dev/.fcx-start";

/// The CFS period the CPU quota is expressed in.
const CPU_PERIOD_US: u64 = 100_000;

pub fn render(c: &BundleConfig<'_>) -> Value {
    let caps = profile::CAPABILITIES;
    let mut resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "pids": {"limit": c.pids_limit},
    });
    if let Some(mb) = c.memory_mb {
        let bytes = u64::from(mb) * 1024 * 1024;
        resources["memory"] = json!({"limit": bytes, "swap": bytes});
    }
    if let Some(cpu) = c.cpu {
        let quota = (cpu * CPU_PERIOD_US as f64).round() as i64;
        resources["cpu"] = json!({"quota": quota.max(1000), "period": CPU_PERIOD_US});
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "network", "path": c.netns}),
    ];
    if c.cgroup_namespace {
        namespaces.push(json!({"type": "cgroup"}));
    }
    let mut doc = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": c.uid, "gid": c.gid, "additionalGids": c.additional_gids},
            "args": c.args,
            "env": c.env,
            "cwd": c.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": c.hostname,
        "mounts": mounts(c),
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": c.cgroups_path,
            "resources": resources,
            "maskedPaths": profile::MASKED_PATHS,
            "readonlyPaths": profile::READONLY_PATHS,
            "seccomp": profile::seccomp(),
        },
    });
    match c.gate {
        Some(Gate::Host { cat, fifo }) => {
            doc["hooks"] = json!({"createContainer": [{"path": cat, "args": ["cat", fifo]}]});
        }
        Some(Gate::InContainer { .. }) => {
            doc["hooks"] =
                json!({"startContainer": [{"path": GATE_BINARY, "args": ["cat", GATE_FIFO]}]});
        }
        None => {}
    }
    doc
}

fn mounts(c: &BundleConfig<'_>) -> Value {
    let tmp_size = format!("size={}m", c.tmp_mb);
    let mut list = json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", tmp_size]},
        {"destination": "/etc/resolv.conf", "type": "bind", "source": c.resolv_conf,
         "options": ["rbind", "ro"]},
        {"destination": "/etc/hosts", "type": "bind", "source": c.hosts,
         "options": ["rbind", "ro"]},
    ]);
    if let (Some(identity), Some(all)) = (c.identity, list.as_array_mut()) {
        all.retain(|m| m["destination"] != "/sys/fs/cgroup");
        all.push(
            json!({"destination": crate::snapshot::CONTAINER_IDENTITY_PATH,
            "type": "bind", "source": identity, "options": ["rbind", "ro"]}),
        );
    }
    if let (Some(Gate::InContainer { busybox, fifo }), Some(all)) = (c.gate, list.as_array_mut()) {
        all.push(
            json!({"destination": GATE_BINARY, "type": "bind", "source": busybox,
            "options": ["bind", "ro", "nosuid", "nodev"]}),
        );
        all.push(
            json!({"destination": GATE_FIFO, "type": "bind", "source": fifo,
            "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}),
        );
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(args: &'a [String], env: &'a [String]) -> BundleConfig<'a> {
        BundleConfig {
            args,
            env,
            cwd: "/app",
            uid: 65534,
            gid: 65534,
            additional_gids: &[],
            hostname: "c-1",
            netns: Path::new("/proc/1/task/2/ns/net"),
            cgroups_path: "/fcx/p/c-1/ctr",
            cgroup_namespace: false,
            memory_mb: Some(128),
            cpu: Some(0.35),
            pids_limit: 256,
            tmp_mb: 512,
            resolv_conf: Path::new("/run/r"),
            hosts: Path::new("/run/h"),
            gate: None,
            identity: None,
        }
    }

    #[test]
    fn limits_namespaces_and_profile() {
        let args = vec!["node".to_string(), "server.js".to_string()];
        let env = vec!["A=1".to_string()];
        let v = render(&sample(&args, &env));
        assert_eq!(v["process"]["args"][1], "server.js");
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 128u64 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 35_000);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 256);
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "mount", "ipc", "uts", "network"]);
        assert_eq!(v["linux"]["namespaces"][4]["path"], "/proc/1/task/2/ns/net");
        // Pure cgroup v2 (found by scripts/portability.sh): the container's own namespace.
        let mut v2 = sample(&args, &env);
        v2.cgroup_namespace = true;
        let v2 = render(&v2);
        assert_eq!(v2["linux"]["namespaces"][5]["type"], "cgroup");
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(!caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert!(!caps.iter().any(|c| c == "CAP_NET_RAW"));
        assert!(v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore"));
        let tmp = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/tmp")
            .unwrap();
        assert!(tmp["options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "size=512m"));
    }

    #[test]
    fn no_memory_limit_when_the_parent_group_enforces_it() {
        let mut c = sample(&[], &[]);
        c.memory_mb = None;
        c.cpu = None;
        let v = render(&c);
        assert!(v["linux"]["resources"].get("memory").is_none());
        assert!(v["linux"]["resources"].get("cpu").is_none());
        assert!(v.get("hooks").is_none());
        c.gate = Some(Gate::Host {
            cat: Path::new("/usr/bin/cat"),
            fifo: Path::new("/b/start"),
        });
        let v = render(&c);
        assert_eq!(v["hooks"]["createContainer"][0]["args"][1], "/b/start");
        assert!(v["hooks"].get("startContainer").is_none());
        // After pivot_root: the hook and its fifo are paths inside the container.
        c.gate = Some(Gate::InContainer {
            busybox: Path::new("/bin/busybox"),
            fifo: Path::new("/b/start"),
        });
        let v = render(&c);
        assert!(v["hooks"].get("createContainer").is_none());
        assert_eq!(v["hooks"]["startContainer"][0]["path"], GATE_BINARY);
        assert_eq!(v["hooks"]["startContainer"][0]["args"][1], GATE_FIFO);
        let mounts = v["mounts"].as_array().unwrap();
        let source = |dest: &str| {
            mounts
                .iter()
                .find(|m| m["destination"] == dest)
                .map(|m| m["source"].clone())
        };
        assert_eq!(source(GATE_BINARY), Some(json!("/bin/busybox")));
        assert_eq!(source(GATE_FIFO), Some(json!("/b/start")));
    }

    #[test]
    fn snapshot_instances_get_the_identity_file_and_no_cgroup_mount() {
        let mut c = sample(&[], &[]);
        let dests = |v: &Value| -> Vec<String> {
            v["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["destination"].as_str().unwrap().to_owned())
                .collect()
        };
        assert!(dests(&render(&c)).contains(&"/sys/fs/cgroup".to_owned()));
        c.identity = Some(Path::new("/b/instance-id"));
        let d = dests(&render(&c));
        assert!(!d.contains(&"/sys/fs/cgroup".to_owned()), "{d:?}");
        assert!(d.contains(&"/etc/fcx-instance-id".to_owned()), "{d:?}");
    }
}
