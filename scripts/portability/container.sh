#!/bin/sh
# Runs the smoke suite once more inside a crun container in the guest, set up as a
# Kubernetes DaemonSet pod of fcx nodes would be (not privileged):
# - its own pid, mount, ipc, uts and cgroup namespaces; the node's network (hostNetwork);
# - the capabilities a DaemonSet's securityContext.capabilities.add names (CAPS below):
#   Docker's defaults (crun can only hand the function containers what it holds itself),
#   plus SYS_ADMIN (mounts, namespaces, cgroups), NET_ADMIN (loopback and pasta's tap in
#   the instances' network namespaces) and SYS_RESOURCE (crun raises RLIMIT_MEMLOCK to load
#   its eBPF device filter on cgroup v2; `fcx doctor` checks it); nothing else (no
#   SYS_PTRACE, SYS_MODULE, BPF, ...);
# - /proc with the runtime's masked and read-only paths, /sys read-only, and the cgroup2
#   mount read-only at /sys/fs/cgroup, as containerd gives a non-privileged container;
# - /dev/net/tun (pasta; a device plugin or a hostPath CharDevice in Kubernetes);
# - its own cgroup (/fcxp-node, with memory and pids limits) as the delegated subtree;
# - the node's root filesystem read-only as its image, tmpfs for /run, /tmp, /var/tmp.
# Output goes to the serial console like the rest of the guest's.
set -u
bundle=/run/fcxp-node
name=fcxp-node
wait_s=${FCXP_WAIT:-180}
CAPS="CAP_CHOWN CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_NET_RAW CAP_SETGID \
CAP_SETUID CAP_SETFCAP CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_KILL \
CAP_AUDIT_WRITE CAP_SYS_ADMIN CAP_NET_ADMIN CAP_SYS_RESOURCE"

mkdir -p "$bundle/rootfs"
# The guest's own root filesystem (not its /proc, /sys, /run, ...) is the node image.
mountpoint -q "$bundle/rootfs" || mount --bind / "$bundle/rootfs"
echo "FCXP-NOTE container capabilities: $CAPS"
CAPS="$CAPS" WAIT="$wait_s" python3 - "$bundle/config.json" <<'EOF'
import json, os, sys
caps = os.environ["CAPS"].split()
ro = ["nosuid", "noexec", "nodev", "ro"]
config = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["/bin/bash", "/payload/smoke.sh", "container", "/payload"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "FCXP_WAIT=" + os.environ["WAIT"], "HOME=/root", "FCXP_DUMP_MOUNTINFO=1"],
        "cwd": "/",
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 65536, "soft": 65536}],
        # Kubernetes forces allowPrivilegeEscalation when CAP_SYS_ADMIN is added.
        "noNewPrivileges": False,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "fcxp-node",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ro},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ro + ["relatime"]},
        {"destination": "/payload", "type": "bind", "source": "/payload",
         "options": ["rbind", "ro"]},
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=755"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777"]},
        {"destination": "/var/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "cgroup")],
        "cgroupsPath": "/fcxp-node",
        "resources": {
            "memory": {"limit": 1536 * 1024 * 1024},
            "pids": {"limit": 4096},
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
            ],
        },
        "devices": [{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200,
                     "fileMode": 0o666, "uid": 0, "gid": 0}],
        # containerd's defaults for a non-privileged container.
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    },
}
json.dump(config, open(sys.argv[1], "w"), indent=1)
EOF
crun delete --force "$name" >/dev/null 2>&1
# Bounded: the suite bounds each of its waits, this bounds the whole container.
timeout --kill-after=30 $((wait_s * 12)) crun run --bundle "$bundle" "$name" </dev/null
rc=$?
[ $rc = 0 ] || echo "FCXP-NOTE container exited with $rc"
crun delete --force "$name" >/dev/null 2>&1
umount "$bundle/rootfs" 2>/dev/null
exit $rc
